"""Write src/gankit/data/adult.csv.gz, the built-in ``adult`` table, from UCI Adult's CSV.

UCI "Adult" (census income), Barry Becker and Ronny Kohavi, 1996, UCI Machine Learning
Repository, CC BY 4.0. The values lose the file's leading spaces, and its "?" becomes an empty
(missing) field; nothing else changes (32,561 rows x 15 columns, in the file's order).

    python scripts/extract_adult.py ../shared/data/adult.csv
"""

from __future__ import annotations

import csv
import gzip
import io
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "gankit" / "data" / "adult.csv.gz"


def main(source: str) -> None:
    rows = list(csv.reader(io.StringIO(Path(source).read_text(encoding="utf-8"))))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    for row in rows:
        if row:
            w.writerow(["" if v.strip() == "?" else v.strip() for v in row])
    # mtime=0: the same bytes on every run
    OUT.write_bytes(gzip.compress(buf.getvalue().encode("utf-8"), compresslevel=9, mtime=0))
    print(f"wrote {OUT} ({len(rows) - 1} rows)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/adult.csv")
