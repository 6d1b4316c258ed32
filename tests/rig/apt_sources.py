"""The Debian mirror of this machine, read from its apt sources (for the rig's debootstrap).

No mirror address is written anywhere in the repository: the rig uses the archive this machine's
apt already uses (a user behind a local mirror or proxy gets that one), or ``AMS_RIG_MIRROR``.

``pick_debian_mirror`` is pure (file names and texts in, URI out); ``read_apt_sources`` does the
reading, in apt's order: ``/etc/apt/sources.list``, then ``/etc/apt/sources.list.d/*.list``
(one-line format) and ``*.sources`` (deb822 format), sorted by name. Other names in
``sources.list.d`` (``*.save``, ``*.disabled``, …) are ignored, as apt ignores them.

Which entry is "the main Debian archive" (best first; the first entry in apt's order wins a tie):

* type ``deb`` (``deb-src`` never), a URI debootstrap can fetch from: ``http``, ``https`` or
  ``ftp`` first, a ``file:`` URI only when there is nothing else. ``cdrom:``, ``mirror:``,
  ``mirror+http:``/``mirror+file:`` (these name a *list* of mirrors), ``tor+http:``, ``copy:``,
  ``s3:``… are skipped: debootstrap cannot use them;
* the suite is not a security, backports or proposed-updates suite and not a flat repository;
* signed with the Debian archive keyring, or with no ``signed-by`` at all (the keys in
  ``trusted.gpg.d``), before an entry signed by another keyring (a third-party repository);
* the suite is the rig's release or its ``-updates`` before another Debian release (a host on
  another release: a Debian mirror carries every release); a suite that is no Debian release name
  (``cloud-sdk-bookworm``, ``nodistro``, ``jammy``…) never counts;
* component ``main`` before none;
* a URI that also carries the ``-updates`` suite of the same release (as the Debian archive does,
  third-party repositories rarely do) before one that does not;
* the release itself before its ``-updates``.

The URI is returned without trailing slashes (``…/debian/`` and ``…/debian`` are one mirror, and
the mirror is part of the image cache key).

``python -m tests.rig.apt_sources [ETC_APT]`` prints what is picked on this machine.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from pathlib import Path
from typing import Iterable, Sequence

#: Debian release names and aliases (a suite naming none of them is not the Debian archive).
DEBIAN_RELEASES = frozenset((
    "oldoldstable", "oldstable", "stable", "testing", "unstable", "sid", "experimental",
    "jessie", "stretch", "buster", "bullseye", "bookworm", "trixie", "forky", "duke",
))
NETWORK_SCHEMES = ("http", "https", "ftp")
#: File names apt reads in sources.list.d (apt ignores any other name there).
_PART_NAME = re.compile(r"^[A-Za-z0-9_.\-]+\.(list|sources)$")
_ONE_LINE_TYPE = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)(?:\s+|(?=\[))(.*)$")
_FALSE = frozenset(("no", "false", "off", "0", "without", "disable"))


@dataclasses.dataclass(frozen=True)
class SourceEntry:
    """One (type, URI, suite) of an apt source, with its components and signed-by option."""

    types: tuple[str, ...]
    uri: str
    suite: str
    components: tuple[str, ...]
    signed_by: str | None = None
    origin: str = ""  # "file:line" of the entry, for messages


def parse_one_line(text: str, origin: str = "") -> list[SourceEntry]:
    """Entries of a ``sources.list``-style text: ``deb [opt=val …] URI SUITE [COMPONENT…]``.

    ``#`` starts a comment anywhere on a line; malformed lines are skipped, as apt would refuse
    them anyway (the rig is not the place to report them).
    """
    entries: list[SourceEntry] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _ONE_LINE_TYPE.match(line)
        if match is None:
            continue
        kind, rest = match.group(1), match.group(2).strip()
        options: dict[str, str] = {}
        if rest.startswith("["):
            close = rest.find("]")
            if close < 0:
                continue
            for opt in rest[1:close].split():
                key, _, value = opt.partition("=")
                options[key.strip().lower().rstrip("+-")] = value.strip()
            rest = rest[close + 1:].strip()
        words = [w.strip('"') for w in rest.split()]
        if len(words) < 2:
            continue
        entries.append(SourceEntry(types=(kind,), uri=words[0], suite=words[1],
                                   components=tuple(words[2:]),
                                   signed_by=options.get("signed-by"),
                                   origin=f"{origin}:{lineno}" if origin else str(lineno)))
    return entries


def _deb822_stanzas(text: str) -> list[tuple[int, dict[str, str]]]:
    """(first line, {lower-case field: value}) per stanza; comment lines are dropped and
    continuation lines (leading blank) are joined with a newline."""
    stanzas: list[tuple[int, dict[str, str]]] = []
    fields: dict[str, str] = {}
    first = 0
    last: str | None = None
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.startswith("#"):
            continue
        if not line.strip():
            if fields:
                stanzas.append((first, fields))
            fields, last = {}, None
            continue
        if line[0] in " \t":
            if last is not None:
                fields[last] += "\n" + line.strip()
            continue
        key, sep, value = line.partition(":")
        if not sep:
            last = None
            continue
        if not fields:
            first = lineno
        last = key.strip().lower()
        fields[last] = value.strip()
    if fields:
        stanzas.append((first, fields))
    return [(first, {k: v.strip() for k, v in f.items()}) for first, f in stanzas]


def parse_deb822(text: str, origin: str = "") -> list[SourceEntry]:
    """Entries of a ``*.sources`` text (``Types``/``URIs``/``Suites``/``Components`` stanzas);
    stanzas with ``Enabled: no`` are left out."""
    entries: list[SourceEntry] = []
    for lineno, fields in _deb822_stanzas(text):
        if fields.get("enabled", "yes").strip().lower() in _FALSE:
            continue
        types = tuple(fields.get("types", "").split())
        uris = fields.get("uris", "").split()
        suites = fields.get("suites", "").split()
        components = tuple(fields.get("components", "").split())
        signed_by = fields.get("signed-by") or None
        where = f"{origin}:{lineno}" if origin else str(lineno)
        for uri in uris:
            for suite in suites:
                entries.append(SourceEntry(types=types, uri=uri, suite=suite,
                                           components=components, signed_by=signed_by,
                                           origin=where))
    return entries


def parse_source_file(name: str, text: str) -> list[SourceEntry]:
    """Entries of one apt source file: deb822 for ``*.sources``, one-line format otherwise."""
    if name.endswith(".sources"):
        return parse_deb822(text, name)
    return parse_one_line(text, name)


def _scheme(uri: str) -> str:
    head, sep, _ = uri.partition(":")
    return head.lower() if sep else ""


def _suite_base(suite: str) -> tuple[str, bool] | None:
    """(release name, is "-updates") for a Debian archive suite, None for anything else
    (security, backports, proposed-updates, flat repositories, non-Debian names)."""
    if "/" in suite or "$" in suite:  # "./" flat repository, "bookworm/updates" (old security)
        return None
    base, updates = suite, False
    if suite.endswith("-updates") and not suite.endswith("-proposed-updates"):
        base, updates = suite[: -len("-updates")], True
    if base.lower() not in DEBIAN_RELEASES:
        return None
    return base.lower(), updates


def _debian_keyring(signed_by: str | None) -> bool:
    if signed_by is None:
        return True
    value = signed_by.strip()
    if "\n" in value or "BEGIN PGP" in value:
        return False  # an embedded key: not the keyring file Debian installs
    return all(os.path.basename(p).startswith("debian-archive-")
               for p in re.split(r"[,\s]+", value) if p)


def normalise_uri(uri: str) -> str:
    """`uri` without trailing slashes and with a lower-case scheme (as debootstrap wants it)."""
    scheme, sep, rest = uri.partition(":")
    if sep:
        uri = scheme.lower() + sep + rest
    stripped = uri.rstrip("/")
    return stripped if stripped and not stripped.endswith(":") else uri


def pick_debian_mirror(files: Iterable[tuple[str, str]], release: str) -> str | None:
    """The URI of the main Debian archive among apt source files, or None.

    `files` are (file name, text) in apt's reading order; the name selects the format (deb822
    for ``*.sources``). `release` is the suite the rig bootstraps (``bookworm``). See the module
    docstring for the order of preference.
    """
    entries: list[SourceEntry] = []
    for name, text in files:
        entries.extend(parse_source_file(name, text))
    release = release.lower()
    suites_by_uri: dict[str, set[tuple[str, bool]]] = {}
    for entry in entries:
        base = _suite_base(entry.suite)
        if "deb" in entry.types and base is not None:
            suites_by_uri.setdefault(normalise_uri(entry.uri), set()).add(base)

    best: tuple | None = None
    best_uri: str | None = None
    for index, entry in enumerate(entries):
        if "deb" not in entry.types:
            continue
        scheme = _scheme(entry.uri)
        if scheme in NETWORK_SCHEMES:
            scheme_rank = 0
        elif scheme == "file":
            scheme_rank = 1
        else:
            continue  # cdrom:, mirror+http:, tor+http:, copy:, … (debootstrap cannot use them)
        base = _suite_base(entry.suite)
        if base is None:
            continue
        name, updates = base
        uri = normalise_uri(entry.uri)
        known = suites_by_uri.get(uri, set())
        rank = (
            scheme_rank,
            0 if _debian_keyring(entry.signed_by) else 1,
            0 if name == release else 1,
            0 if "main" in entry.components else 1,
            0 if {(name, False), (name, True)} <= known else 1,
            1 if updates else 0,
            index,
        )
        if best is None or rank < best:
            best, best_uri = rank, uri
    return best_uri


def source_file_names(etc_apt: Path = Path("/etc/apt")) -> list[Path]:
    """The files apt reads its sources from, in apt's order (existing ones only)."""
    paths = []
    main = etc_apt / "sources.list"
    if main.is_file():
        paths.append(main)
    parts = etc_apt / "sources.list.d"
    if parts.is_dir():
        paths.extend(sorted(p for p in parts.iterdir()
                            if _PART_NAME.match(p.name) and p.is_file()))
    return paths


def read_apt_sources(etc_apt: Path = Path("/etc/apt")) -> list[tuple[str, str]]:
    """(path, text) of this machine's apt source files, in apt's order; unreadable files are
    skipped."""
    files = []
    for path in source_file_names(etc_apt):
        try:
            files.append((str(path), path.read_text(errors="replace")))
        except OSError:
            continue
    return files


def looked_in(etc_apt: Path = Path("/etc/apt")) -> str:
    """Where the mirror is looked for, for messages."""
    return (f"{etc_apt / 'sources.list'}, {etc_apt / 'sources.list.d'}/*.list and "
            f"{etc_apt / 'sources.list.d'}/*.sources")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    from tests.rig.image import SUITE

    etc_apt = Path(args[0]) if args else Path("/etc/apt")
    files = read_apt_sources(etc_apt)
    for name, _ in files:
        print(f"read: {name}")
    mirror = pick_debian_mirror(files, SUITE)
    print(f"picked for {SUITE}: {mirror if mirror else '(none)'}")
    return 0 if mirror else 1


if __name__ == "__main__":
    sys.exit(main())
