"""Shipping a trained run: ONNX export, a local sampling page, TensorBoard event files.

Each piece imports its optional dependency (onnx, tensorboard) only when used, and says in one
line how to install it when it is missing.
"""
