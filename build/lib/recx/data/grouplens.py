"""The official GroupLens MovieLens-100K files (``u.data`` + ``u.item`` from ``ml-100k.zip``).

``u.data`` is tab-separated without a header: ``user id | item id | rating | timestamp`` (unix seconds).
``u.item`` is ``|``-separated, latin-1 encoded, without a header: ``movie id | movie title | release date |
video release date | IMDb URL`` followed by 19 0/1 genre flags (the order of ``u.genre``, below).

The item table is normalised to the schema the RecBole reader yields for its copy of ML-100K (see
:func:`recx.data.recbole.movielens_items`): ``title`` without the trailing ``" (year)"`` (RecBole moved the year to
``release_year``), ``release_year`` (Utf8, from that suffix or else the release date) and ``genres`` as a list of
genre names. Ids are kept as the integers GroupLens writes; :func:`recx.data.indexing.index_raw` orders integer and
integer-like token ids the same way, so both copies of ML-100K index identically.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from recx.data.interactions import RawDataset
from recx.data.tables import first_line, parse_column, read_table
from recx.errors import DataError

ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
    "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)
DATA_COLUMNS = ["user", "item", "rating", "timestamp"]
ITEM_COLUMNS = ["item", "raw_title", "release_date", "video_release_date", "imdb_url",
                *[f"genre_{k}" for k in range(len(ML100K_GENRES))]]
_DATA_FIX = "u.data lines are 'user<TAB>item<TAB>rating<TAB>timestamp', all integers (the ml-100k.zip original)"
_ITEM_FIX = ("u.item lines are 'id|title|release date|video release date|IMDb URL|' + 19 genre flags (0/1), "
             "latin-1 encoded (the ml-100k.zip original)")


def read_grouplens_100k(data_path: str | Path, item_path: str | Path | None = None) -> RawDataset:
    """Read ``u.data`` (and optionally ``u.item``) into a :class:`RawDataset`.

    Interactions: ``user``, ``item`` (Int64, non-negative), ``rating`` and ``timestamp`` (Float64). Items, when
    ``item_path`` is given: ``item`` (Int64), ``title``, ``release_year``, ``genres`` (List(Utf8)), ``imdb_url``,
    in file order.
    """
    data_path = Path(data_path)
    frame = read_table(data_path, separator="\t", has_header=False, names=DATA_COLUMNS, what="u.data",
                       fix=_DATA_FIX)
    if frame.height == 0:
        raise DataError("u.data holds no interactions", path=data_path, fix=_DATA_FIX)
    interactions = pl.DataFrame([
        parse_column(frame, "user", "id", path=data_path, what="u.data", fix=_DATA_FIX),
        parse_column(frame, "item", "id", path=data_path, what="u.data", fix=_DATA_FIX),
        parse_column(frame, "rating", "float", path=data_path, what="u.data", fix=_DATA_FIX),
        parse_column(frame, "timestamp", "float", path=data_path, what="u.data", fix=_DATA_FIX),
    ])
    items = read_grouplens_items(item_path) if item_path is not None else None
    meta = {"format": "grouplens-100k", "data_path": str(data_path), "rows": interactions.height}
    if item_path is not None:
        meta["item_path"] = str(item_path)
    return RawDataset(interactions, items, meta=meta)


def read_grouplens_items(item_path: str | Path) -> pl.DataFrame:
    """Read ``u.item`` into ``item, title, release_year, genres, imdb_url`` (see the module docstring)."""
    item_path = Path(item_path)
    table = read_table(item_path, separator="|", has_header=False, names=ITEM_COLUMNS, encoding="latin-1",
                       what="u.item", fix=_ITEM_FIX)
    if table.height == 0:
        raise DataError("u.item lists no movies", path=item_path, fix=_ITEM_FIX)
    item = parse_column(table, "item", "id", path=item_path, what="u.item", fix=_ITEM_FIX)
    duplicated = item.is_duplicated()
    if duplicated.any():
        raise DataError(f"u.item line {first_line(table, duplicated)}: movie id {item.filter(duplicated)[0]} is "
                        f"listed more than once", path=item_path, field="item", fix="each movie appears once")
    flags = [f"genre_{k}" for k in range(len(ML100K_GENRES))]
    for column, genre in zip(flags, ML100K_GENRES):
        value = table[column].fill_null("").str.strip_chars()
        bad = ~value.is_in(["0", "1"])
        if bad.any():
            raise DataError(
                f"u.item line {first_line(table, bad)}: genre flag '{genre}' is '{table.filter(bad)[column][0]}', "
                f"not 0 or 1", path=item_path, field=genre, fix=_ITEM_FIX,
            )
    year_in_title = r"\s*\((\d{4})\)\s*$"
    raw_title = pl.col("raw_title").fill_null("").str.strip_chars()
    return table.select(
        item,
        raw_title.str.replace(year_in_title, "").alias("title"),
        pl.coalesce(
            raw_title.str.extract(year_in_title, 1),
            pl.col("release_date").str.extract(r"(\d{4})\s*$", 1),
        ).alias("release_year"),
        pl.concat_list([pl.when(pl.col(c).str.strip_chars() == "1").then(pl.lit(g)).otherwise(pl.lit(None))
                        for c, g in zip(flags, ML100K_GENRES)]).list.drop_nulls().alias("genres"),
        pl.col("imdb_url"),
    )
