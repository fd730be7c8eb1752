"""The collector's Parquet files: hive-style partitions `DIR/date=YYYY-MM-DD/cc=XX/asn=ASn/`,
each file `part-<id>.parquet`, written by DuckDB. Every file is written under a hidden
temporary name in its own directory (`.part-<id>.parquet.tmp`: readers look for `*.parquet`
and skip it), fsynced, renamed into place, and the directory fsynced — a new directory's
parent as well — so a file is either whole under its name or absent; a leftover temporary
file (a crash mid-write) is deleted at start (`remove_temporary_files`).

A row holds the record whole, as its canonical JSON (`record`: what `probe report` reads),
its SHA-256 (`record_sha256`, hex: the content hash) and flat columns to filter on."""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from probe.collector.ledger import ROW_COLUMNS, batch_rows, received_hour

#: The columns of a partition file, in order (the partition keys date, cc and asn are in the
#: path, not in the file).
PARQUET_SCHEMA = (
    ("measurement_start_time", "TIMESTAMP"),
    ("report_id", "VARCHAR"),
    ("input", "VARCHAR"),
    ("test_name", "VARCHAR"),
    ("service", "VARCHAR"),
    ("probe_asn", "VARCHAR"),
    ("probe_cc", "VARCHAR"),
    ("probe_network_name", "VARCHAR"),
    ("network_type", "VARCHAR"),
    ("software_version", "VARCHAR"),
    ("status", "VARCHAR"),
    ("blocking", "VARCHAR"),
    ("confirmed", "BOOLEAN"),
    ("upload_group", "VARCHAR"),
    ("received_at", "TIMESTAMP"),
    ("record_sha256", "VARCHAR"),
    ("record", "VARCHAR"),
)
STATE_DIR = "_collector"
PART_FILE = re.compile(r"part-[0-9a-f]{32}\.parquet")
TEMP_FILE = re.compile(r"\.part-[0-9a-f]{32}\.parquet\.tmp")
PARTITION = re.compile(r"date=\d{4}-\d{2}-\d{2}/cc=[A-Z]{2}/asn=AS\d{1,10}")


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def fsync_path(path: Path) -> None:
    """fsync a file or a directory."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def partition_dir(root: Path, partition: str) -> Path:
    """The partition's directory, created with every new level's parent fsynced."""
    if not PARTITION.fullmatch(partition):
        raise ValueError(f"bad partition {partition!r}")
    current = root
    for level in partition.split("/"):
        child = current / level
        if not child.is_dir():
            child.mkdir(exist_ok=True)
            fsync_path(current)
        current = child
    return current


def connect(temp_dir: Path) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection for writing partition files: bounded memory, spilling into the
    collector's own state directory (never the working directory)."""
    con = duckdb.connect(
        config={"memory_limit": "256MB", "threads": "2", "temp_directory": str(temp_dir)}
    )
    con.execute("SET enable_progress_bar = false")
    return con


def write_file(con: duckdb.DuckDBPyConnection, select: str, final: Path) -> None:
    """The rows of `select` as Parquet file `final`: temporary name, fsync, rename. The caller
    fsyncs the directory once its files are all in place."""
    temp = final.with_name(f".{final.name}.tmp")
    try:
        con.execute(f"COPY ({select}) TO {_sql_text(str(temp))} (FORMAT parquet, COMPRESSION zstd)")
        fsync_path(temp)
        os.replace(temp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


def write_batch(root: Path, reader: sqlite3.Connection, batch: str, temp_dir: Path) -> list[str]:
    """The claimed batch's rows as one file per partition, `part-<batch>.parquet` (written
    again whole, under the same name, if an earlier attempt was interrupted); the partitions
    written. Raises OSError or duckdb.Error (a full disk: nothing of the batch is lost, it
    stays pending)."""
    con = connect(temp_dir)
    try:
        columns = ", ".join(f"{name} {kind}" for name, kind in PARQUET_SCHEMA)
        con.execute(f"CREATE TABLE batch (pid INTEGER, seq BIGINT, {columns})")
        partitions: dict[str, int] = {}
        for rows in batch_rows(reader, batch):
            _insert(con, rows, partitions)
        names = ", ".join(name for name, _ in PARQUET_SCHEMA)
        touched: set[Path] = set()
        for partition, pid in sorted(partitions.items()):
            directory = partition_dir(root, partition)
            select = f"SELECT {names} FROM batch WHERE pid = {pid} ORDER BY seq"
            write_file(con, select, directory / f"part-{batch}.parquet")
            touched.add(directory)
        for directory in sorted(touched):
            fsync_path(directory)
        return sorted(partitions)
    finally:
        con.close()


def _insert(con: duckdb.DuckDBPyConnection, rows: list[Any], partitions: dict[str, int]) -> None:
    index = {name: i for i, name in enumerate(ROW_COLUMNS)}
    columns: dict[str, list[Any]] = {name: [] for name, _ in PARQUET_SCHEMA}
    pids: list[int] = []
    seqs: list[int] = []
    for row in rows:
        pids.append(partitions.setdefault(row[index["partition"]], len(partitions)))
        seqs.append(row[index["seq"]])
        for name, _ in PARQUET_SCHEMA:
            if name == "measurement_start_time":
                value: Any = datetime.strptime(row[index["time"]], "%Y-%m-%d %H:%M:%S")
            elif name == "received_at":
                value = received_hour(row[index["received"]])
            elif name == "record_sha256":
                value = bytes(row[index["hash"]]).hex()
            elif name == "confirmed":
                value = bool(row[index["confirmed"]])
            else:
                value = row[index[name]]
            columns[name].append(value)
    params: dict[str, Any] = {"pid": pids, "seq": seqs, **columns}
    values = ", ".join(f"unnest(${name})" for name in ("pid", "seq", *columns))
    con.execute(f"INSERT INTO batch SELECT {values}", params)


def partition_files(root: Path, partition: str) -> list[Path]:
    directory = root / partition
    try:
        return sorted(p for p in directory.iterdir() if PART_FILE.fullmatch(p.name))
    except FileNotFoundError:
        return []


def merge(root: Path, partition: str, inputs: list[str], merge_id: str, temp_dir: Path) -> Path:
    """The input files of a partition as one file `part-<merge_id>.parquet` (rows in the
    inputs' order); the caller deletes the inputs once the ledger knows the merge's intent."""
    directory = root / partition
    files = ", ".join(_sql_text(str(directory / name)) for name in inputs)
    final = directory / f"part-{merge_id}.parquet"
    con = connect(temp_dir)
    try:
        write_file(
            con,
            f"SELECT * FROM read_parquet([{files}], union_by_name = true,"
            " hive_partitioning = false)",
            final,
        )
    finally:
        con.close()
    fsync_path(directory)
    return final


def iter_part_files(root: Path) -> Iterator[Path]:
    """Every partition file under the collector's directory."""
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = [d for d in subdirs if d != STATE_DIR and not d.startswith(".")]
        for name in files:
            if PART_FILE.fullmatch(name):
                yield Path(directory) / name


def remove_temporary_files(root: Path) -> int:
    """Delete the temporary files an interrupted write left; how many there were."""
    removed = 0
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = [d for d in subdirs if d != STATE_DIR]
        temporary = [name for name in files if TEMP_FILE.fullmatch(name)]
        for name in temporary:
            with contextlib.suppress(FileNotFoundError):
                (Path(directory) / name).unlink()
        if temporary:
            fsync_path(Path(directory))
            removed += len(temporary)
    return removed


def file_hashes(path: Path) -> list[bytes]:
    """The content hashes of a partition file's records (rebuilding the index)."""
    con = duckdb.connect()
    try:
        try:
            rows = con.execute(
                "SELECT unhex(record_sha256) FROM read_parquet($p)", {"p": str(path)}
            ).fetchall()
        except duckdb.BinderException:
            rows = con.execute(
                "SELECT unhex(sha256(record)) FROM read_parquet($p)", {"p": str(path)}
            ).fetchall()
        return [bytes(row[0]) for row in rows]
    finally:
        con.close()
