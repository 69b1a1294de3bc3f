"""Screenshot of ``gankit serve``'s page for README (docs/serve.png), in Debian's chromium.

    python scripts/screenshot_serve.py RUN docs/serve.png [--seed S] [--a I --b J --t 0.5]

Serves RUN on a free local port, opens the page at seed S, picks samples I and J as A and B,
moves the walk to T and saves a full-page screenshot. Needs the `playwright` package and
/usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import threading

from gankit.run import load_run
from gankit.ship.serve import make_server

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def main() -> None:
    """Parse the arguments, serve the run, drive the page, save the screenshot."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("out")
    p.add_argument("--label", default="", help="the picker's choice (default: any)")
    p.add_argument("--seed", type=int, default=0, help="the first grid's seed")
    p.add_argument("--a", type=int, default=0)
    p.add_argument("--b", type=int, default=1)
    p.add_argument("--t", type=float, default=0.5)
    p.add_argument("--width", type=int, default=1100)
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    server = make_server(load_run(args.run), "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/?seed={args.seed}"
    settled = "document.body.dataset.pending === '0'"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": args.width, "height": 800},
                                    bypass_csp=True)
            page.goto(url)
            page.wait_for_selector("#grid img, #grid tr")
            page.wait_for_function(settled)
            if args.label:
                page.select_option("#label", args.label)
                page.wait_for_function(settled)
            items = page.locator("#grid [data-index]")
            if items.count():  # images and rows are picked; points walk from the first two
                items.nth(args.a).click()
                items.nth(args.b).click()
                page.wait_for_function(settled)
            page.locator("#walk").fill(str(round(args.t * 100)))
            page.wait_for_function(f"document.querySelector('#walk-view').dataset.t === "
                                   f"'{round(args.t * 100) / 100}' && {settled}")
            page.screenshot(path=args.out, full_page=True)
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
