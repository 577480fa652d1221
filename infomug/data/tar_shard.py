"""One WebDataset tar shard: its samples' members, listed before any is read, and where it is damaged.

``tarfile`` takes the end of what it can read for the end of the archive: a shard cut at a member
boundary, cut inside a member header, or holding a garbage 512-byte header reads as a shorter, complete
tar, and the samples after the damage are lost without a word. So `list_shard` lists every member header
first (seeking over the data), then checks how the listing ended:

* a complete tar ends with two zero blocks (POSIX; every writer, Python's ``tarfile`` and so webdataset's
  and img2dataset's included, writes them); no bytes there is a cut at a member boundary, a short block a
  cut inside a header, a non-zero block a header ``tarfile`` could not read;
* a member whose data runs past the end of the file (``tarfile``'s "unexpected end of data") is cut short;
* where img2dataset left a ``{shard}_stats.json`` beside ``{shard}.tar``, fewer samples than its
  ``successes`` means samples are missing even from a well-formed tar.

The sample in progress where the damage starts is dropped (it may lack members); the samples before it are
complete and readable. Listing first also lets a reader visit the samples in any order (a per-epoch
shuffle within the shard) with one seek each. A compressed tar (``.tar.gz``, ``.bz2``, ``.xz``) is read too,
but only forward cheaply (`ShardListing.compressed`); its offsets are those of the uncompressed tar.
"""

from __future__ import annotations

import bz2
import gzip
import json
import logging
import lzma
import os
import posixpath
import tarfile
from dataclasses import dataclass, field, replace

from .bad_samples import BadSample

logger = logging.getLogger(__name__)

END_OF_ARCHIVE = bytes(2 * tarfile.BLOCKSIZE)


@dataclass(frozen=True)
class Damage:
    """Where and how a shard is damaged: the samples from ``offset`` on are lost.

    Attributes:
        offset: byte of the uncompressed tar where the damage starts.
        key: the sample being listed there (dropped), or None.
        detail: what is wrong, for the log.
        last_sample_complete: the damage lies past the last member's data (in the end-of-archive blocks),
            so the sample in progress is complete and kept.
    """

    offset: int
    key: str | None
    detail: str
    last_sample_complete: bool = False

    def where(self, shard: str) -> str:
        """``shard.tar:KEY at byte N``: the key under which the damage is counted."""
        return f"{shard}{':' + self.key if self.key else ''} at byte {self.offset}"


@dataclass
class ShardListing:
    """A shard's samples as ``(key, members)`` in tar order, its damage (None if it has none), and the open
    tar to read them from (`read`); a context manager that closes it.

    A sample's key is a member's path up to the first dot of its basename (``000/0001.jpg`` ->
    ``000/0001``); its members are a run of consecutive regular files sharing that key.
    """

    path: str
    samples: list[tuple[str, list[tarfile.TarInfo]]] = field(default_factory=list)
    damage: Damage | None = None
    tar: tarfile.TarFile | None = None

    @property
    def compressed(self) -> bool:
        """Whether the tar is compressed: a backward seek then decompresses it again from its start."""
        return isinstance(getattr(self.tar, "fileobj", None), gzip.GzipFile | bz2.BZ2File | lzma.LZMAFile)

    def read(self, name: str, members: list[tarfile.TarInfo]) -> dict[str, bytes]:
        """``{extension: bytes}`` of one listed sample (the first member of each extension).

        Raises:
            BadSample: ``corrupt_shard`` if the bytes cannot be read after all (a disk error, a file
                changed since it was listed).
        """
        group: dict[str, bytes] = {}
        try:
            for member in members:
                extension = posixpath.basename(member.name).partition(".")[2].lower()
                if extension not in group:
                    group[extension] = self.tar.extractfile(member).read()
        except (tarfile.TarError, EOFError, OSError) as error:
            raise BadSample("corrupt_shard", name, f"cannot read {member.name}: {error}") from error
        return group

    def close(self) -> None:
        if self.tar is not None:
            self.tar.close()

    def __enter__(self) -> ShardListing:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def list_shard(path: str) -> ShardListing:
    """List the samples of the tar at ``path`` and find its damage; see the module docstring.

    Returns:
        The listing, holding the open tar (none when not even the first header reads: the listing is then
        empty and damaged at byte 0); use it in a ``with`` block.
    """
    listing = ShardListing(path)
    try:
        listing.tar = tar = tarfile.open(path, mode="r:*")
    except (tarfile.TarError, EOFError, OSError) as error:
        listing.damage = Damage(0, None, f"not a readable tar: {_first_line(error)}")
        return listing
    key, members = None, []
    try:
        for member in tar:
            if not member.isfile():
                continue
            directory, base = posixpath.split(member.name)
            stem, dot, _ = base.partition(".")
            if not stem or not dot:
                continue  # hidden files (``._x`` from macOS tar) and files without extension
            member_key = posixpath.join(directory, stem)
            if member_key != key:
                if members:
                    listing.samples.append((key, members))
                key, members = member_key, []
            members.append(member)
        listing.damage = _end_damage(tar, key if members else None)
    except (tarfile.TarError, EOFError, OSError) as error:
        listing.damage = _read_damage(tar, key if members else None, error)
    if members and (listing.damage is None or listing.damage.last_sample_complete):
        listing.samples.append((key, members))
    listed = _listed_samples(path)
    if listed is not None and len(listing.samples) < listed[0]:
        count = f"{len(listing.samples)} of the {listed[0]} samples {listed[1]} lists as successes"
        damage = listing.damage
        if damage is None:
            listing.damage = Damage(tar.offset, None, f"a complete tar, but holding only {count}", True)
        else:
            listing.damage = replace(damage, detail=f"{damage.detail}; {count} are readable")
    return listing


def _end_damage(tar: tarfile.TarFile, key: str | None) -> Damage | None:
    """What ended the listing where ``tarfile`` saw an end: the end-of-archive blocks (None) or damage."""
    offset = tar.offset
    tar.fileobj.seek(offset)
    end = tar.fileobj.read(len(END_OF_ARCHIVE))
    if end == END_OF_ARCHIVE:
        return None
    block = end[: tarfile.BLOCKSIZE]
    if not end:
        detail = "the tar ends without its two zero end-of-archive blocks: cut at a member boundary"
    elif not any(block):
        detail = (
            f"only {len(end)} of the {len(END_OF_ARCHIVE)} zero bytes that end a tar: cut past the data"
            if not any(end)
            else "a lone zero block, then data tarfile does not read; what follows is lost"
        )
        return Damage(offset, None, detail, last_sample_complete=True)
    elif len(block) < tarfile.BLOCKSIZE:
        detail = f"cut inside a member header ({len(block)} of its {tarfile.BLOCKSIZE} bytes)"
    else:
        try:
            tarfile.TarInfo.frombuf(block, tar.encoding, tar.errors)
            detail = "a member header tarfile stopped at"
        except tarfile.HeaderError as error:
            detail = f"an unreadable member header ({error})"
    return Damage(offset, key, f"{detail}; what follows is lost")


def _read_damage(tar: tarfile.TarFile, key: str | None, error: Exception) -> Damage:
    if "unexpected end of data" in str(error) and tar.members:
        member = tar.members[-1]  # listed, but its data runs past the end of the file
        return Damage(
            member.offset_data,
            key,
            f"{member.name} is cut short ({member.size} bytes from byte {member.offset_data}): the tar ends"
            " inside its data",
        )
    return Damage(tar.offset, key, f"{type(error).__name__}: {_first_line(error)}")


def _listed_samples(path: str) -> tuple[int, str] | None:
    """``(successes, file name)`` from the ``_stats.json`` img2dataset writes beside a ``.tar``, if any."""
    if not path.endswith(".tar"):
        return None
    stats = path[: -len(".tar")] + "_stats.json"
    if not os.path.isfile(stats):
        return None
    try:
        with open(stats, encoding="utf-8") as handle:
            successes = json.load(handle)["successes"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        logger.warning("%s: unreadable (%s); the shard's sample count is not checked", stats, error)
        return None
    if isinstance(successes, bool) or not isinstance(successes, int):
        return None
    return successes, os.path.basename(stats)


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
