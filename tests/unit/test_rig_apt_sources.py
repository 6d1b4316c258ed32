"""The rig's Debian mirror comes from this machine's apt sources (or AMS_RIG_MIRROR), never
from an address written in the repository. Every host name here is a reserved example name."""

import json
import os
import re
from pathlib import Path

import pytest

from tests.rig import apt_sources, image
from tests.rig.apt_sources import (parse_deb822, parse_one_line, pick_debian_mirror,
                                   read_apt_sources)

MIRROR = "http://mirror.example/debian"
SECURITY = "http://security.example/debian-security"

# The shape of Debian bookworm's own debian.sources (comments between fields included).
DEBIAN_SOURCES = f"""\
Types: deb
# http://snapshot.example/archive/debian/20250520T000000Z
URIs: {MIRROR}
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
# http://snapshot.example/archive/debian-security/20250520T000000Z
URIs: {SECURITY}
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""


def pick(*files, release="bookworm"):
    return pick_debian_mirror(list(files), release)


def one_line(text, name="/etc/apt/sources.list"):
    return (name, text)


def deb822(text, name="/etc/apt/sources.list.d/debian.sources"):
    return (name, text)


# ------------------------------------------------------------------ one-line format

def test_one_line_classic_sources_list():
    text = f"""\
deb {MIRROR} bookworm main contrib non-free-firmware
deb-src {MIRROR} bookworm main
deb {SECURITY} bookworm-security main
deb {MIRROR} bookworm-updates main
"""
    assert pick(one_line(text)) == MIRROR


def test_one_line_options_in_brackets():
    text = (f"deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
            f"{MIRROR} bookworm main\n")
    assert pick(one_line(text)) == MIRROR
    spaced = f"deb [ arch=amd64,arm64 trusted=yes ] {MIRROR} bookworm main\n"
    assert pick(one_line(spaced)) == MIRROR
    glued = f"deb[arch=amd64] {MIRROR} bookworm main\n"
    assert pick(one_line(glued)) == MIRROR


def test_one_line_parse_keeps_signed_by_and_components():
    [entry] = parse_one_line(
        f"deb [signed-by=/etc/apt/keyrings/x.gpg arch=amd64] {MIRROR} bookworm main contrib # c\n",
        "f.list")
    assert entry.types == ("deb",)
    assert (entry.uri, entry.suite, entry.components) == (MIRROR, "bookworm", ("main", "contrib"))
    assert entry.signed_by == "/etc/apt/keyrings/x.gpg"
    assert entry.origin == "f.list:1"


def test_one_line_comments_and_blank_lines():
    text = f"""\
# deb http://old.example/debian bookworm main

   # indented comment
deb {MIRROR} bookworm main # the mirror we use
#deb http://other.example/debian bookworm main
"""
    assert pick(one_line(text)) == MIRROR
    assert [e.uri for e in parse_one_line(text)] == [MIRROR]


def test_one_line_malformed_lines_are_skipped():
    text = f"""\
deb
deb {MIRROR}
deb [signed-by=/x.gpg {MIRROR} bookworm main
deb http://good.example/debian bookworm main
"""
    assert pick(one_line(text)) == "http://good.example/debian"


def test_one_line_tabs_between_fields():
    assert pick(one_line(f"deb\t{MIRROR}\tbookworm\tmain\n")) == MIRROR


def test_security_only_gives_nothing():
    text = (f"deb {SECURITY} bookworm-security main\n"
            "deb http://old.example/debian-security bookworm/updates main\n")
    assert pick(one_line(text)) is None


def test_deb_src_only_gives_nothing():
    assert pick(one_line(f"deb-src {MIRROR} bookworm main\n")) is None


def test_updates_suite_alone_is_enough():
    assert pick(one_line(f"deb {MIRROR} bookworm-updates main\n")) == MIRROR


def test_backports_and_proposed_updates_are_not_the_archive_suite():
    text = ("deb http://backports.example/debian bookworm-backports main\n"
            "deb http://proposed.example/debian bookworm-proposed-updates main\n")
    assert pick(one_line(text)) is None


def test_flat_repository_is_not_the_archive():
    assert pick(one_line("deb http://flat.example/repo ./\n")) is None


def test_trailing_slash_is_dropped():
    assert pick(one_line(f"deb {MIRROR}/ bookworm main\n")) == MIRROR
    assert pick(one_line("deb HTTP://Mirror.example/debian// bookworm main\n")) == \
        "http://Mirror.example/debian"


# ------------------------------------------------------------------ deb822 format

def test_deb822_debian_sources():
    assert pick(deb822(DEBIAN_SOURCES)) == MIRROR


def test_deb822_parse_expands_uris_and_suites():
    entries = parse_deb822(DEBIAN_SOURCES, "debian.sources")
    assert [(e.uri, e.suite) for e in entries] == [
        (MIRROR, "bookworm"), (MIRROR, "bookworm-updates"), (SECURITY, "bookworm-security")]
    assert entries[0].signed_by == "/usr/share/keyrings/debian-archive-keyring.gpg"
    assert entries[0].origin == "debian.sources:1"
    assert entries[2].origin == "debian.sources:8"


def test_deb822_disabled_stanza_is_ignored():
    text = f"""\
Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
Components: main
Enabled: no

Types: deb
URIs: {MIRROR}
Suites: bookworm
Components: main
Enabled: yes
"""
    assert pick(deb822(text)) == MIRROR
    only_disabled = text.split("\n\n")[0] + "\n"
    assert pick(deb822(only_disabled)) is None
    assert pick(deb822(only_disabled.replace("Enabled: no", "enabled: False"))) is None


def test_deb822_several_uris_types_and_case_insensitive_fields():
    text = """\
types: deb-src deb
uris: cdrom:[Debian GNU/Linux 12]/ http://second.example/debian
suites: bookworm
components: main
"""
    assert pick(deb822(text)) == "http://second.example/debian"


def test_deb822_deb_src_only_stanza_is_ignored():
    text = f"Types: deb-src\nURIs: {MIRROR}\nSuites: bookworm\nComponents: main\n"
    assert pick(deb822(text)) is None


def test_deb822_embedded_key_and_extra_blank_lines():
    text = f"""\


# a comment before the stanza
Types: deb
URIs: {MIRROR}
Suites: bookworm
Components: main
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 mDMEZ...
 -----END PGP PUBLIC KEY BLOCK-----
Architectures: amd64



"""
    entries = parse_deb822(text)
    assert [(e.uri, e.suite) for e in entries] == [(MIRROR, "bookworm")]
    assert entries[0].signed_by.startswith("-----BEGIN PGP")
    assert pick(deb822(text)) == MIRROR


def test_deb822_stanza_without_suites_is_ignored():
    assert pick(deb822(f"Types: deb\nURIs: {MIRROR}\nComponents: main\n")) is None


def test_other_repositories_of_this_machine_are_not_debian():
    # A cloud SDK one-liner without signed-by and a deb822 nodistro repository.
    cloud = one_line("deb https://packages.example/apt cloud-sdk-bookworm main\n",
                     "/etc/apt/sources.list.d/cloud-sdk.list")
    node = deb822("Types: deb\nURIs: https://node.example/node_20.x\nSuites: nodistro\n"
                  "Components: main\nSigned-By: /usr/share/keyrings/nodesource.gpg\n",
                  "/etc/apt/sources.list.d/nodesource.sources")
    assert pick(cloud, node) is None
    assert pick(cloud, deb822(DEBIAN_SOURCES), node) == MIRROR


# ------------------------------------------------------------------ URI schemes

def test_cdrom_is_never_used():
    assert pick(one_line("deb cdrom:[Debian GNU/Linux 12.5.0 _Bookworm_]/ bookworm main\n")) is None


def test_file_uri_only_when_nothing_else():
    text = f"deb file:///srv/debian bookworm main\ndeb {MIRROR} bookworm main\n"
    assert pick(one_line(text)) == MIRROR
    assert pick(one_line("deb file:///srv/debian bookworm main\n")) == "file:///srv/debian"
    assert pick(one_line("deb file:/srv/debian/ bookworm main\n")) == "file:/srv/debian"


def test_schemes_debootstrap_cannot_use_are_skipped():
    text = """\
deb mirror+http://list.example/mirrors.txt bookworm main
deb mirror+file:/etc/apt/mirrors/debian.list bookworm main
deb mirror://list.example/mirrors.txt bookworm main
deb tor+http://onion.example/debian bookworm main
deb copy:/srv/debian bookworm main
"""
    assert pick(one_line(text)) is None
    assert pick(one_line(text + "deb https://tls.example/debian bookworm main\n")) == \
        "https://tls.example/debian"
    assert pick(one_line(text + "deb ftp://ftp.example/debian bookworm main\n")) == \
        "ftp://ftp.example/debian"


# ------------------------------------------------------------------ preferences

def test_component_main_is_preferred():
    text = ("deb http://contrib.example/debian bookworm contrib\n"
            f"deb {MIRROR} bookworm main\n")
    assert pick(one_line(text)) == MIRROR
    assert pick(one_line("deb http://contrib.example/debian bookworm contrib\n")) == \
        "http://contrib.example/debian"


def test_third_party_keyring_loses_to_the_debian_archive():
    third = one_line("deb [signed-by=/etc/apt/keyrings/vendor.asc] https://vendor.example/deb "
                     "bookworm main\n", "/etc/apt/sources.list.d/adoptium.list")
    assert pick(third, deb822(DEBIAN_SOURCES)) == MIRROR
    # ... but is used when it is all there is (a local mirror re-signed with its own key)
    assert pick(third) == "https://vendor.example/deb"


def test_a_uri_with_release_and_updates_wins_over_a_lone_release():
    text = ("deb http://vendor.example/debian bookworm main\n"
            f"deb {MIRROR} bookworm main\n"
            f"deb {MIRROR} bookworm-updates main\n")
    assert pick(one_line(text)) == MIRROR


def test_first_entry_wins_a_tie():
    text = ("deb http://first.example/debian bookworm main\n"
            "deb http://second.example/debian bookworm main\n")
    assert pick(one_line(text)) == "http://first.example/debian"


def test_release_before_its_updates():
    text = ("deb http://updates.example/debian bookworm-updates main\n"
            f"deb {MIRROR} bookworm main\n")
    assert pick(one_line(text)) == MIRROR


def test_the_rig_release_before_another_debian_release():
    text = ("deb http://trixie.example/debian trixie main\n"
            f"deb {MIRROR} bookworm main\n")
    assert pick(one_line(text)) == MIRROR


def test_host_on_another_debian_release_uses_its_mirror():
    text = """\
Types: deb
URIs: http://trixie.example/debian
Suites: trixie trixie-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.pgp

Types: deb
URIs: http://trixie.example/debian-security
Suites: trixie-security
Components: main
"""
    assert pick(deb822(text)) == "http://trixie.example/debian"
    assert pick(one_line("deb http://alias.example/debian stable main\n")) == \
        "http://alias.example/debian"


def test_non_debian_distribution_gives_nothing():
    text = ("deb http://archive.example/ubuntu jammy main restricted\n"
            "deb http://archive.example/ubuntu jammy-updates main restricted\n")
    assert pick(one_line(text)) is None


# ------------------------------------------------------------------ several files, nothing

def test_several_files_in_apt_order():
    main = one_line("# empty but for this comment\n")
    local = one_line("deb http://local.example/debian bookworm main\n"
                     "deb http://local.example/debian bookworm-updates main\n",
                     "/etc/apt/sources.list.d/00local.list")
    assert pick(main, local, deb822(DEBIAN_SOURCES)) == "http://local.example/debian"
    assert pick(main, deb822(DEBIAN_SOURCES), local) == MIRROR
    # a URI without the -updates suite loses to one with it, whatever the order
    lone = one_line("deb http://lone.example/debian bookworm main\n",
                    "/etc/apt/sources.list.d/00lone.list")
    assert pick(main, lone, deb822(DEBIAN_SOURCES)) == MIRROR


def test_sources_suffix_selects_deb822():
    # The same deb822 text named *.list is read as one-line lines, none of which is an entry.
    assert pick(("/etc/apt/sources.list.d/debian.list", DEBIAN_SOURCES)) is None
    assert pick(("/etc/apt/sources.list.d/debian.sources", DEBIAN_SOURCES)) == MIRROR


@pytest.mark.parametrize("files", [
    [],
    [("/etc/apt/sources.list", "")],
    [("/etc/apt/sources.list", "# deb http://x.example/debian bookworm main\n")],
    [("/etc/apt/sources.list.d/x.sources", "# nothing\n\n")],
])
def test_nothing_found(files):
    assert pick_debian_mirror(files, "bookworm") is None


# ------------------------------------------------------------------ reading /etc/apt

def test_read_apt_sources_in_apt_order(tmp_path):
    (tmp_path / "sources.list").write_text("A")
    parts = tmp_path / "sources.list.d"
    parts.mkdir()
    for name, text in [("b.sources", "B"), ("a.list", "C"), ("c.list.save", "x"),
                       ("d.sources.disabled-by-farm", "x"), ("bad name.list", "x"),
                       ("notes.txt", "x")]:
        (parts / name).write_text(text)
    (parts / "dir.list").mkdir()
    files = read_apt_sources(tmp_path)
    assert [(os.path.basename(n), t) for n, t in files] == [
        ("sources.list", "A"), ("a.list", "C"), ("b.sources", "B")]


def test_read_apt_sources_without_sources_list(tmp_path):
    assert read_apt_sources(tmp_path) == []
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(DEBIAN_SOURCES)
    assert pick_debian_mirror(read_apt_sources(tmp_path), "bookworm") == MIRROR


# ------------------------------------------------------------------ image.debian_mirror

@pytest.fixture
def apt_files(monkeypatch):
    files: list = []
    monkeypatch.setattr(apt_sources, "read_apt_sources", lambda etc_apt=None: list(files))
    monkeypatch.delenv("AMS_RIG_MIRROR", raising=False)
    return files


def test_debian_mirror_from_apt_sources(apt_files):
    apt_files.append(deb822(DEBIAN_SOURCES))
    assert image.debian_mirror() == MIRROR


def test_debian_mirror_override_wins(apt_files, monkeypatch):
    apt_files.append(deb822(DEBIAN_SOURCES))
    monkeypatch.setenv("AMS_RIG_MIRROR", "http://override.example/debian/")
    assert image.debian_mirror() == "http://override.example/debian/"  # as given, as before
    monkeypatch.setenv("AMS_RIG_MIRROR", "")
    assert image.debian_mirror() == MIRROR


def test_debian_mirror_not_found_is_one_clear_error(apt_files):
    apt_files.append(one_line(f"deb {SECURITY} bookworm-security main\n"))
    with pytest.raises(image.ImageError) as exc:
        image.debian_mirror()
    message = str(exc.value)
    assert "/etc/apt/sources.list," in message
    assert "/etc/apt/sources.list.d/*.list" in message
    assert "/etc/apt/sources.list.d/*.sources" in message
    assert "set AMS_RIG_MIRROR" in message


def test_no_mirror_address_is_written_in_the_rig_or_its_docs():
    root = Path(image.__file__).resolve().parents[2]
    paths = [Path(image.__file__), Path(apt_sources.__file__), root / "scripts" / "setup",
             *sorted((root / "docs").glob("*.md"))]
    for path in paths:
        if path.exists():
            assert not re.findall(r"[a-z][a-z0-9+.-]*://\S*debian", path.read_text()), path


# ------------------------------------------------------------------ the image cache key

def _cached_image(cache, mirror):
    """A cache whose current image was built from `mirror` (as build_image leaves it)."""
    key_path, public_key, password = image._credentials(cache)
    deb_stamp = {"suite": image.SUITE, "mirror": mirror, "packages": image.PACKAGES,
                 "variant": "minbase", "version": image.DEBOOTSTRAP_VERSION}
    (cache / "debootstrap.json").write_text(json.dumps(deb_stamp))
    (cache / "kernel.json").write_text(json.dumps(
        {"version": "6.1.0-99-amd64", "package": "linux-image-6.1.0-99-amd64.deb",
         "source": "apt"}))
    key = image._image_key(json.dumps(deb_stamp, sort_keys=True),
                           "linux-image-6.1.0-99-amd64.deb", public_key, password)
    directory = cache / "images" / key
    directory.mkdir(parents=True)
    for name in ("vmlinuz", "initrd.img", "root.qcow2"):
        (directory / name).write_text("")
    (directory / "image.json").write_text(json.dumps({"key": key,
                                                      "kernel_version": "6.1.0-99-amd64"}))
    (cache / "current.json").write_text(json.dumps({"key": key}))
    return key


@pytest.fixture
def no_build(monkeypatch):
    """Any attempt to build fails at once (no debootstrap here)."""
    monkeypatch.setattr(image, "missing_build_tools", lambda: ["(building disabled in this test)"])
    monkeypatch.delenv("AMS_RIG_KERNEL_DEB", raising=False)


def test_cached_image_is_used_when_apt_names_its_mirror(tmp_path, apt_files, no_build):
    key = _cached_image(tmp_path, MIRROR)
    # a trailing slash in the apt source is the same mirror: no rebuild
    apt_files.append(one_line(f"deb {MIRROR}/ bookworm main\n"))
    assert image.build_image(tmp_path).key == key


def test_cached_image_is_used_with_the_override(tmp_path, apt_files, no_build, monkeypatch):
    key = _cached_image(tmp_path, "http://override.example/debian")
    monkeypatch.setenv("AMS_RIG_MIRROR", "http://override.example/debian")
    assert image.build_image(tmp_path).key == key


def test_another_mirror_is_another_debootstrap_as_before(tmp_path, apt_files, no_build):
    # The mirror is part of the debootstrap stamp and so of the image key (debootstrap writes it
    # into the guest's sources.list): another mirror means a new build, as with AMS_RIG_MIRROR.
    _cached_image(tmp_path, "http://old.example/debian")
    apt_files.append(deb822(DEBIAN_SOURCES))
    with pytest.raises(image.ImageError, match="building disabled"):
        image.build_image(tmp_path)


def test_no_mirror_is_an_error_even_with_a_cached_image(tmp_path, apt_files, no_build):
    _cached_image(tmp_path, MIRROR)
    with pytest.raises(image.ImageError, match="AMS_RIG_MIRROR"):
        image.build_image(tmp_path)
