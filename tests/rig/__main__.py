"""``python -m tests.rig up|down|status|env``: the rig as a background service for manual runs.

    eval "$(python -m tests.rig up)"     # endpoint + one guest registered as an instance
    ams host discovery ...
    python -m tests.rig status
    python -m tests.rig down

``up`` starts a daemon (``python -m tests.rig _serve``, its own session, log in the state dir)
that runs moto's server with the EBS hooks and (unless ``--no-guest``) a QEMU guest registered as
an EC2 instance; it waits until everything is ready and prints ``export`` lines.  State dir:
``--state-dir``, else ``$AMS_RIG_STATE``, else ``~/.cache/ams-rig/run``.  See docs/rig-ec2.md.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

from tests.rig.guest import pid_alive, process_cmdline
from tests.rig.ec2 import default_state_root, dump_json, export_lines, ssh_config_text

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
READY_TIMEOUT = 900  # a cold image build plus a boot under TCG


def _paths(state):
    return {
        "pid": os.path.join(state, "rig.pid"),
        "log": os.path.join(state, "rig.log"),
        "info": os.path.join(state, "rig.json"),
        "env": os.path.join(state, "env.sh"),
        "ssh": os.path.join(state, "ssh_config"),
        "ec2": os.path.join(state, "ec2"),
        "guest": os.path.join(state, "guest"),
    }


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _daemon_pid(state):
    """pid of a live rig daemon for this state dir, else None."""
    try:
        with open(_paths(state)["pid"]) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return None
    if pid_alive(pid) and "tests.rig" in process_cmdline(pid) and "_serve" in process_cmdline(pid):
        return pid
    return None


def _log_tail(state, lines=30):
    try:
        with open(_paths(state)["log"], errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------------------------------------
# the daemon

def serve(args):
    state = os.path.abspath(args.state_dir)
    paths = _paths(state)
    os.makedirs(state, exist_ok=True)
    with open(paths["pid"], "w") as f:
        f.write(f"{os.getpid()}\n")
    stop_event = threading.Event()

    def on_signal(signum, frame):  # noqa: ARG001
        stop_event.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    from tests.rig.ec2 import Ec2Rig

    info = {"status": "starting", "pid": os.getpid(), "state_dir": state,
            "region": args.region, "zone": args.zone, "guest": None, "instance_id": None}
    dump_json(paths["info"], info)
    rig = Ec2Rig(state_dir=paths["ec2"], port=args.port, region=args.region)
    guest = None
    try:
        t0 = time.monotonic()
        rig.start()
        info["url"] = rig.url
        env = dict(rig.env())
        env["AMS_RIG_STATE"] = state
        print(f"endpoint {rig.url} up in {time.monotonic() - t0:.1f}s", flush=True)
        if not args.no_guest:
            from tests.rig.guest import Guest, qemu_unavailable_reason

            reason = qemu_unavailable_reason()
            if reason:
                raise RuntimeError(f"no guest: {reason} (use --no-guest for the endpoint only)")
            guest = Guest(args.name, paths["guest"], ssh_port=args.ssh_port or None)
            t1 = time.monotonic()
            guest.start()
            print(f"guest {guest.name} up in {time.monotonic() - t1:.1f}s "
                  f"(ssh 127.0.0.1:{guest.ssh_port}, qemu pid {guest.pid})", flush=True)
            instance_id = rig.register_instance(guest, region=args.region, zone=args.zone,
                                                name=args.name)
            with open(paths["ssh"], "w") as f:
                f.write(ssh_config_text([{"name": args.name, "port": guest.ssh_port,
                                          "user": guest.user, "key": guest.key_path}]))
            env.update({
                "AMS_SSH_CONFIG_FILE": paths["ssh"],
                "AMS_SSH_USER": guest.user,
                "AMS_SSH_KEYFILE": guest.key_path,
                "AMS_SUDO_PASSWORD": guest.password,
                "AMS_SSH_HOST_KEY_POLICY": "off",
            })
            info["guest"] = {"name": args.name, "ssh_port": guest.ssh_port, "pid": guest.pid,
                             "pidfile": str(guest.pidfile), "user": guest.user,
                             "key_path": guest.key_path}
            info["instance_id"] = instance_id
        with open(paths["env"], "w") as f:
            f.write(export_lines(env) + "\n")
        os.chmod(paths["env"], 0o600)
        info["env"] = env
        info["status"] = "ready"
        dump_json(paths["info"], info)
        print("ready", flush=True)
        while not stop_event.wait(1.0):
            if guest is not None and info["guest"]["pid"] != guest.pid and guest.pid:
                info["guest"]["pid"] = guest.pid  # restarted through StartInstances
                dump_json(paths["info"], info)
    except BaseException as err:
        info["status"] = "failed"
        info["error"] = str(err)
        dump_json(paths["info"], info)
        print(f"failed: {err}", flush=True)
        import traceback

        traceback.print_exc()
    finally:
        print("stopping", flush=True)
        try:
            rig.stop()
        except Exception as err:  # noqa: BLE001
            print(f"stopping the endpoint: {err}", flush=True)
        if guest is not None:
            try:
                guest.shutdown()
            except Exception as err:  # noqa: BLE001
                print(f"shutting the guest down: {err}", flush=True)
        if info.get("status") != "failed":
            info["status"] = "stopped"
            dump_json(paths["info"], info)
        try:
            os.unlink(paths["pid"])
        except OSError:
            pass
        print("stopped", flush=True)
    return 1 if info.get("status") == "failed" else 0


# ---------------------------------------------------------------------------------------------
# up / down / status / env

def up(args):
    state = os.path.abspath(args.state_dir)
    paths = _paths(state)
    pid = _daemon_pid(state)
    if pid:
        info = _read_json(paths["info"]) or {}
        if info.get("status") == "ready":
            print(f"# the rig is already running (pid {pid}, state {state})", file=sys.stderr)
            print(open(paths["env"]).read(), end="")
            return 0
        print(f"a rig daemon (pid {pid}) is starting or stuck; run: python -m tests.rig down "
              f"--state-dir {state}", file=sys.stderr)
        return 1
    _cleanup_leftovers(state)
    os.makedirs(state, exist_ok=True)
    cmd = [sys.executable, "-m", "tests.rig", "_serve", "--state-dir", state,
           "--region", args.region, "--zone", args.zone, "--name", args.name,
           "--port", str(args.port), "--ssh-port", str(args.ssh_port)]
    if args.no_guest:
        cmd.append("--no-guest")
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    with open(paths["log"], "ab") as log, open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdin=devnull, stdout=log, stderr=log,
                                start_new_session=True, close_fds=True)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        info = _read_json(paths["info"]) or {}
        if info.get("pid") == proc.pid and info.get("status") == "ready":
            print(f"# ams rig up: {info['url']}"
                  + (f", guest {info['guest']['name']} = {info['instance_id']} "
                     f"({info['zone']}), ssh 127.0.0.1:{info['guest']['ssh_port']}"
                     if info.get("guest") else ", no guest"), file=sys.stderr)
            print(open(paths["env"]).read(), end="")
            return 0
        if proc.poll() is not None or info.get("status") == "failed":
            proc.wait(timeout=120)
            print(f"the rig failed to start: {info.get('error', 'see the log')}\n"
                  f"--- {paths['log']} ---\n{_log_tail(state)}", file=sys.stderr)
            _cleanup_leftovers(state)
            return 1
        time.sleep(0.5)
    print(f"the rig did not get ready in {args.timeout}s; stopping it\n{_log_tail(state)}",
          file=sys.stderr)
    _stop_daemon(state, proc.pid)
    _cleanup_leftovers(state)
    return 1


def _stop_daemon(state, pid, timeout=180):
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.3)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return False


def _cleanup_leftovers(state):
    """Kill a QEMU left behind by a dead daemon (by pid, verified) and remove the state dir."""
    info = _read_json(_paths(state)["info"]) or {}
    guest = info.get("guest") or {}
    pid, pidfile = guest.get("pid"), guest.get("pidfile")
    if pidfile:
        try:
            pid = int(open(pidfile).read().strip())
        except (OSError, ValueError):
            pass
    if pid and pidfile and pid_alive(pid) and pidfile in process_cmdline(pid):
        os.kill(pid, signal.SIGKILL)
    if os.path.isdir(state) and (os.path.exists(_paths(state)["info"])
                                 or os.path.exists(_paths(state)["pid"])
                                 or not os.listdir(state)):
        shutil.rmtree(state, ignore_errors=True)


def down(args):
    state = os.path.abspath(args.state_dir)
    pid = _daemon_pid(state)
    if pid:
        clean = _stop_daemon(state, pid)
        print(f"rig daemon {pid} stopped" + ("" if clean else " (killed)"), file=sys.stderr)
    else:
        print("no rig daemon running", file=sys.stderr)
    _cleanup_leftovers(state)
    return 0


def status(args):
    state = os.path.abspath(args.state_dir)
    info = _read_json(_paths(state)["info"])
    pid = _daemon_pid(state)
    if not pid:
        print(f"not running (state {state})")
        return 3
    print(f"running: pid {pid}, state {info.get('status')}, dir {state}")
    url = info.get("url")
    if url:
        try:
            import urllib.request

            urllib.request.urlopen(url + "/moto-api/", timeout=5).read(1)
            reach = "reachable"
        except Exception as err:  # noqa: BLE001
            reach = f"NOT reachable: {err}"
        print(f"endpoint: {url} ({reach})")
    guest = info.get("guest")
    if guest:
        alive = pid_alive(guest.get("pid")) and guest.get("pidfile", "") in process_cmdline(guest["pid"])
        print(f"guest: {guest['name']} = instance {info.get('instance_id')} in {info.get('zone')}, "
              f"ssh {guest['user']}@127.0.0.1:{guest['ssh_port']}, qemu pid {guest['pid']} "
              f"({'running' if alive else 'not running'})")
    else:
        print("guest: none")
    print(f"env: {_paths(state)['env']} (eval \"$(python -m tests.rig env)\")")
    return 0


def env_cmd(args):
    state = os.path.abspath(args.state_dir)
    if not _daemon_pid(state):
        print("the rig is not running (python -m tests.rig up)", file=sys.stderr)
        return 3
    print(open(_paths(state)["env"]).read(), end="")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.rig",
                                     description="Run the ams test rig in the background.")
    parser.add_argument("--state-dir", default=default_state_root(),
                        help="state dir (default: $AMS_RIG_STATE or ~/.cache/ams-rig/run)")
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="start the endpoint and a guest; print export lines")
    p_serve = sub.add_parser("_serve", help=argparse.SUPPRESS)
    for p in (p_up, p_serve):
        p.add_argument("--state-dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        p.add_argument("--no-guest", action="store_true", help="the EC2 endpoint only")
        p.add_argument("--region", default=None, help="region of the guest instance "
                       "(default: from --zone, else us-east-1)")
        p.add_argument("--zone", default=None, help="zone of the guest instance "
                       "(default: <region>a)")
        p.add_argument("--name", default="ams-rig-1", help="Name tag and ssh Host of the guest")
        p.add_argument("--port", type=int, default=0, help="endpoint port (default: any free)")
        p.add_argument("--ssh-port", type=int, default=0, help="guest ssh port (default: any)")
    p_up.add_argument("--timeout", type=float, default=READY_TIMEOUT,
                      help="seconds to wait for the rig to get ready")
    for name, helptext in (("down", "stop everything and remove the state"),
                           ("status", "show what runs"),
                           ("env", "print the export lines of the running rig")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--state-dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.command in ("up", "_serve"):
        if args.region is None:
            args.region = args.zone[:-1] if args.zone else "us-east-1"
        if args.zone is None:
            args.zone = args.region + "a"
        if not args.zone.startswith(args.region):
            parser.error(f"zone {args.zone} is not in region {args.region}")
    handlers = {"up": up, "_serve": serve, "down": down, "status": status, "env": env_cmd}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
