"""Rebuild geoprior's embedded sample data from the NEON files (CC0).

    python benchmarks/make_sample_data.py [DATA_DIR]

DATA_DIR defaults to $GEOPRIOR_DATA, then ../shared/data. Keeps species-level records,
one row per (plot, day, species), with the columns the sample loader reads.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pandas as pd

TAXA = ("bird", "beetle", "mosquito")
OUT = Path(__file__).resolve().parent.parent / "geoprior" / "data"


def main(argv: list[str]) -> None:
    data = Path(argv[0] if argv else os.environ.get("GEOPRIOR_DATA", "../shared/data"))
    for taxon in TAXA:
        src = data / "neon" / f"{taxon}.csv.gz"
        if not src.exists():
            sys.exit(f"missing {src}: NEON survey tables (CC0) come from the neonDivData R package")
        df = pd.read_csv(src)
        df = df[df["taxon_rank"] == "species"]
        plot = df["plotID"] if "plotID" in df else df["location_id"].str.split(".").str[0]
        out = pd.DataFrame(
            {
                "site": df["siteID"],
                "plot": plot,
                "date": df["observation_datetime"].str[:10],
                "species": df["taxon_name"],
                "latitude": df["latitude"].round(5),
                "longitude": df["longitude"].round(5),
            }
        ).drop_duplicates()
        out = out.sort_values(["date", "plot", "species"])
        out.to_csv(OUT / f"neon_{taxon}.csv.gz", index=False)
        print(
            f"{taxon}: {len(out)} rows, {out.species.nunique()} species -> {OUT / f'neon_{taxon}.csv.gz'}"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
