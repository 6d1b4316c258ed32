"""No secret in the guest's process list or ams's log while ams works on the guest (issue 11).

One scenario on the session guest: while ``ams volume create`` and ``ams snapshot create --freeze``
with pre/post hooks run (every host command through ``sudo`` with the password, as the rig's
guest needs), a sampler on the guest records, as root, every distinct line of ``ps -eo args`` and
of every ``/proc/*/cmdline`` and ``/proc/*/environ``, over and over.  Then:

- no known test secret (tests/secrets_audit.py: the guest's sudo password among them) is in
  what the sampler saw, nor in ams's LOG_FILE written with ``--debug``;
- the sampler did see ams's ``sudo`` and the hook running (so it sampled at the right time);
- the hooks, full of quoting traps (test_injection.hooks), arrived byte for byte: the root shell's
  argv holds them unchanged, and they wrote exactly what a local ``sh -c`` of the same text
  writes; description and tag with shell syntax are stored as given; no ``/tmp/pwned-*`` marker.
"""

import shlex
import threading

import pytest

from tests import secrets_audit
from tests.integration.test_injection import hooks, local_run
from tests.integration.test_snapshots_guest import ams_snapshots, tags_of
from tests.integration.test_volumes_guest import ams_volumes, gsh, ok, setup  # noqa: F401  (a fixture)

pytestmark = pytest.mark.guest

OUT = "/var/tmp/ams-audit-ps"
STOP = "/var/tmp/ams-audit-stop"
# $1 output file, $2 stop file: every distinct line of the process list, argv and environments
SAMPLER = r"""out=$1 stop=$2
: >"$out"
while [ ! -e "$stop" ]; do
  { ps -eo args; cat /proc/[0-9]*/cmdline /proc/[0-9]*/environ 2>/dev/null | tr '\0' '\n'; } |
    sort -u - "$out" -o "$out"
  sleep 0.3
done
"""
MARKER = "/tmp/pwned"
PRE_SLEEP = "sleep 2.71828"  # what the sampler must catch while the pre hook runs
DESCRIPTION = f"nightly $(touch {MARKER}-d1) `touch {MARKER}-d2` 'q' \"dq\" ;|&"
TAG = f"'; touch {MARKER}-t1; '"


def hook(result_file):
    body = "; ".join(f"( {h} )" for h in hooks(MARKER))
    return f"{{ {body}; }} >{result_file}", body


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_no_secret_in_the_guest_process_list_and_hooks_arrive_intact(setup, tmp_path, monkeypatch):  # noqa: F811
    ams, inst, rig = setup
    g = inst.guest
    log_file = tmp_path / "ams.log"
    monkeypatch.setenv("AMS_LOG_FILE", str(log_file))
    secrets_audit.watch_file(log_file)
    pre, pre_body = hook("/var/tmp/ams-audit-pre")
    pre = f"{pre}; {PRE_SLEEP}"
    post, post_body = hook("/var/tmp/ams-audit-post")
    gsh(g, f"rm -f {OUT} {STOP} /var/tmp/ams-audit-pre /var/tmp/ams-audit-post {MARKER}-*")

    sampled = []
    sampler = threading.Thread(target=lambda: sampled.append(
        g.run(f"sh -c {shlex.quote(SAMPLER)} sampler {OUT} {STOP}", sudo=True, timeout=900)))
    sampler.start()
    try:
        gid = ok(ams("--debug", "--output", "json", "volume", "create", "-H", inst.name, "-n", 1, "-s", 1,
                     "-m", "/srv/audit")).json["volume_group_id"]
        created = ok(ams("--debug", "--output", "json", "snapshot", "create", "host", "-H", inst.name,
                         "-m", "/srv/audit", "--freeze", "--pre", pre, "--post", post,
                         "-d", DESCRIPTION, "--tag", f"note={TAG}")).json
    finally:
        g.run(f"touch {STOP}")
        sampler.join(120)
    assert sampled and sampled[0][0] == 0, sampled
    listing = gsh(g, f"cat {OUT}")
    lines = set(listing.splitlines())

    # the sampler saw ams at work: its sudo with a password (on stdin), the root shell of the hook
    assert any(line.startswith("sudo -k -S -p [ams-sudo-prompt-") for line in lines)
    assert PRE_SLEEP in listing
    assert f"SUDO_USER={g.user}" in lines  # environments of root's processes were read too
    assert pre in lines  # the argv of the root `sh -c -- HOOK`: the hook unchanged
    # ... and no secret anywhere in it, nor in ams's debug log
    secrets_audit.observe("the guest's process list", listing)
    leaks = secrets_audit.AUDIT.find(listing)
    assert not leaks, leaks
    log_text = log_file.read_text()
    assert "sudo" in log_text and not secrets_audit.AUDIT.find(log_text)

    # the hooks wrote what they would write here; nothing ran that was quoted
    env = {"AMS_MOUNT_POINT": "/srv/audit", "AMS_VOLUME_GROUP_ID": str(gid)}
    assert gsh(g, "cat /var/tmp/ams-audit-pre").encode() == local_run(pre_body, dict(env, AMS_HOOK="pre"))
    assert gsh(g, "cat /var/tmp/ams-audit-post").encode() == local_run(post_body, dict(env, AMS_HOOK="post"))
    for snapshot in ams_snapshots(rig).values():
        assert snapshot["Description"] == DESCRIPTION and tags_of(snapshot)["note"] == TAG
    assert g.run(f"ls -d {MARKER}-*")[0] != 0

    ok(ams("volume", "detach", "volume", gid, "-u"))
    ok(ams("volume", "delete", gid))
    ok(ams("snapshot", "delete", "snapshot", created["snapshot_group_id"]))
    assert ams_volumes(rig) == {} and ams_snapshots(rig) == {}
