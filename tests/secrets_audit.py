"""The secrets the test suite gives ams, and an audit that no output of the suite shows one.

Loaded as a pytest plugin by ``tests/conftest.py``.  Two halves:

**Known test secrets.**  Every secret a fixture hands to ams comes from here or is registered
here: the constants below (the rig's AWS secret access key, SSH key passphrases) and, at run
time, :func:`register` for values made per machine (the sshd test users' passwords, the guest's
sudo password, the MariaDB password of ``AMS_TEST_MYSQL_URL``).

**The audit.**  Everything the suite captures is scanned for any known secret and its obvious
encodings (URL-encoded, base64, ``repr``/JSON-escaped; for a login also ``user:password`` and
its base64, as in URLs and HTTP basic auth):

- every test report: captured stdout, stderr and log sections, and the failure/skip text;
- the stdout and stderr of every ``ams`` run by ``tests.dbfixtures`` (in-process and as a
  child process; :class:`tests.dbfixtures.AmsResult` calls :func:`observe`);
- files registered with :func:`watch_file`, read incrementally after every test: the logs of
  the sshd test hosts, the *command log* of every command line the suite sent to them (recorded
  on the host by the test users' login shell, see ``tests/rig/sshd.py``), ams ``LOG_FILE`` files.

The guest's process list is sampled by ``tests/integration/test_secrets_guest.py``.

A leak makes the run fail (exit status 1) and is listed one line per leak, the secret itself
replaced by its name.  The scan is one precompiled regular expression per text: no subprocess,
no per-test setup.
"""

import base64
import json
import re
import threading
import time
import urllib.parse

AWS_SECRET_ACCESS_KEY = "ams-rig-secret-key-not-a-real-one"  # the rig's moto endpoint takes it
SSH_KEY_PASSPHRASE = "ams-test-key-passphrase-42"  # encrypted key files of the ssh tests
SSH_KEY_PASSPHRASE_QUOTED = "correct horse 'battery\" staple"  # one with quotes and spaces

MIN_NEEDLE = 6  # shorter strings would match by chance
EXCERPT = 40  # characters of context shown on each side of a leak


def encodings(value, user=None, bare=True):
    """{needle: encoding name} of ``value`` as it could show up in text.

    ``user``: also ``user:value`` (URL userinfo, HTTP basic auth) plain, URL-encoded and base64.
    ``bare=False``: only those forms (for a password too common to look for alone).
    """
    forms = {}
    if bare:
        forms[value] = "plain"
        forms.setdefault(urllib.parse.quote(value, safe=""), "URL-encoded")
        forms.setdefault(urllib.parse.quote_plus(value), "URL-encoded")
        forms.setdefault(json.dumps(value)[1:-1], "JSON-escaped")
        forms.setdefault(repr(value)[1:-1], "repr-escaped")
        forms.setdefault(base64.b64encode(value.encode()).decode().rstrip("="), "base64")
    if user:
        pair = f"{user}:{value}"
        forms.setdefault(pair + "@", "user:password@")
        forms.setdefault(f"{urllib.parse.quote(user, safe='')}:{urllib.parse.quote(value, safe='')}@",
                         "URL-encoded user:password@")
        forms.setdefault(base64.b64encode(pair.encode()).decode().rstrip("="), "base64 of user:password")
    return {needle: kind for needle, kind in forms.items() if len(needle) >= MIN_NEEDLE}


class Audit:
    """Known secrets, and the leaks of them found so far (thread-safe)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._secrets = {}  # needle -> (secret name, encoding)
        self._pattern = None  # compiled alternation of every needle (None: rebuild)
        self._leaks = {}  # (test, where, name, encoding) -> report line, in order of discovery
        self._watched = {}  # path -> offset already scanned
        self.current = "(outside a test)"  # the test running now
        self.scanned = 0  # characters scanned
        self.seconds = 0.0  # time spent scanning

    def register(self, value, name, *, user=None, bare=True):
        """Look for ``value`` (a secret called ``name``) in everything observed from now on."""
        if not value:
            return value
        with self._lock:
            for needle, kind in encodings(value, user=user, bare=bare).items():
                if needle not in self._secrets:
                    self._secrets[needle] = (name, kind)
                    self._pattern = None
        return value

    def register_url(self, url, name):
        """Register the password of a database URL (``user:password@`` forms only)."""
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        if parsed.password:
            self.register(parsed.password, name, user=parsed.username or "", bare=False)

    def names(self):
        with self._lock:
            return sorted({name for name, _ in self._secrets.values()})

    def _compiled(self):
        with self._lock:
            if self._pattern is None:
                needles = sorted(self._secrets, key=len, reverse=True)
                self._pattern = re.compile("|".join(map(re.escape, needles)) if needles else r"(?!)")
            return self._pattern

    def find(self, text):
        """[(secret name, encoding, masked excerpt)] of the known secrets in ``text``."""
        if not text:
            return []
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        started = time.perf_counter()
        try:
            return self._find(text)
        finally:
            self.scanned += len(text)
            self.seconds += time.perf_counter() - started

    def _find(self, text):
        pattern = self._compiled()
        longest = max(map(len, self._secrets))
        found = []
        seen = set()
        for match in pattern.finditer(text):
            name, kind = self._secrets[match.group(0)]
            if (name, kind) in seen:
                continue
            seen.add((name, kind))
            start, end = max(0, match.start() - EXCERPT), match.end() + EXCERPT
            near = max(0, start - longest)
            for other in pattern.finditer(text, near, end + longest):  # never cut a secret in two
                if other.start() < start < other.end():
                    start = other.start()
                if other.start() < end < other.end():
                    end = other.end()
            excerpt = pattern.sub(lambda m: f"<{self._secrets[m.group(0)][0]}>", text[start:end])
            found.append((name, kind, repr(excerpt)))
        return found

    def observe(self, where, text, test=None):
        """Scan ``text`` (what ``where`` showed during ``test``, default: the current test)."""
        test = test or self.current
        for name, kind, excerpt in self.find(text):
            with self._lock:
                self._leaks.setdefault((test, where, name, kind), f"{test}: {name} ({kind}) in {where}: {excerpt}")

    def watch_file(self, path):
        """Scan what is appended to ``path`` from now on (see :meth:`scan_watched`)."""
        with self._lock:
            self._watched.setdefault(str(path), 0)

    def scan_watched(self, test=None):
        """Scan what was appended to the watched files since the last scan."""
        with self._lock:
            items = list(self._watched.items())
        for path, offset in items:
            try:
                with open(path, "rb") as fh:
                    fh.seek(offset)
                    data = fh.read()
            except OSError:
                continue
            if data:
                with self._lock:
                    self._watched[path] = offset + len(data)
                self.observe(f"file {path}", data.replace(b"\0", b"\n"), test)

    def unwatch_file(self, path):
        """Scan ``path`` a last time and stop watching it (before it is deleted)."""
        self.scan_watched()
        with self._lock:
            self._watched.pop(str(path), None)

    def leaks(self):
        """One line per leak found (the secret shown as ``<its name>``)."""
        with self._lock:
            return list(self._leaks.values())


AUDIT = Audit()  # the session's
register = AUDIT.register
register_url = AUDIT.register_url
observe = AUDIT.observe
watch_file = AUDIT.watch_file
scan_watched = AUDIT.scan_watched
unwatch_file = AUDIT.unwatch_file
leaks = AUDIT.leaks


# -- the pytest plugin ------------------------------------------------------------------------

register(AWS_SECRET_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY of the rig")
register(SSH_KEY_PASSPHRASE, "SSH_KEY_PASSPHRASE of the tests")
register(SSH_KEY_PASSPHRASE_QUOTED, "SSH_KEY_PASSPHRASE with quotes")


def pytest_runtest_logstart(nodeid, location):  # noqa: ARG001
    AUDIT.current = nodeid


def pytest_runtest_logreport(report):
    for section, content in report.sections:
        observe(section, content, report.nodeid)
    if report.longrepr is not None:
        observe(f"{report.when} report", report.longreprtext, report.nodeid)
    if report.when == "teardown":
        scan_watched(report.nodeid)


def pytest_collectreport(report):
    if report.longrepr is not None:
        observe("collection report", str(report.longrepr), report.nodeid or "(collection)")


def pytest_sessionfinish(session, exitstatus):  # noqa: ARG001
    scan_watched("(end of session)")
    if leaks() and session.exitstatus == 0:
        session.exitstatus = 1  # pytest.ExitCode.TESTS_FAILED: the run fails on a leak


def pytest_terminal_summary(terminalreporter):
    found = leaks()
    if found:
        terminalreporter.section("secrets audit: known secrets in captured output", red=True, bold=True)
        for line in found:
            terminalreporter.write_line("SECRET LEAK " + line)
    else:
        terminalreporter.write_line(
            f"secrets audit: none of {len(AUDIT.names())} known secrets in {AUDIT.scanned / 1e6:.1f} MB of"
            f" captured output, ams output and remote command lines ({AUDIT.seconds:.2f}s)")
