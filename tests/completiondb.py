"""A small ams database for the completion tests: live and deleted rows of every kind.

``fill(engine)`` writes, on a database with the schema installed:

* hosts: web1, web2, web_x and db1 (live) and web9 (terminated);
* volume groups 1, 2, 12 (live; 1 and 12 on web1 at /data and /logs, 2 on web2 at /data),
  3 and 13 (deleted);
* snapshot groups 5 and 55 (live, of web1's /data and /archive), 6 (live, of web2's /data)
  and 7 (deleted, of web1's /old);
* schedules 1 and 3 (live) and 2 (deleted).
"""

from datetime import datetime, timedelta, timezone

NOW = datetime(2027, 1, 1, tzinfo=timezone.utc)
GONE = NOW + timedelta(days=1)

HOSTS = {
    "i-0aaaaaaaaaaaaaaa1": "web1.example.com",
    "i-0aaaaaaaaaaaaaaa2": "web2.example.com",
    "i-0aaaaaaaaaaaaaaa3": "web_x.example.com",
    "i-0ccccccccccccccc1": "db1.example.com",
}
TERMINATED = {"i-0bbbbbbbbbbbbbbb1": "web9.example.com"}
LIVE_VOLUME_GROUPS = [1, 2, 12]
DELETED_VOLUME_GROUPS = [3, 13]
LIVE_SNAPSHOT_GROUPS = [5, 6, 55]
DELETED_SNAPSHOT_GROUPS = [7]
LIVE_SCHEDULES = [1, 3]
DELETED_SCHEDULES = [2]


def _host(instance_id, hostname, terminated=False):
    return {
        "instance_id": instance_id,
        "hostname": hostname,
        "hostname_source": "discovery",
        "region": "us-east-1",
        "availability_zone": "us-east-1a",
        "state": "terminated" if terminated else "running",
        "created_at": NOW,
        "updated_at": NOW,
        "terminated_at": GONE if terminated else None,
    }


def fill(engine):
    from amslib.store.schema import host_volumes, hosts, snapshot_groups, snapshot_schedules, volume_groups

    with engine.begin() as conn:
        conn.execute(hosts.insert(), [_host(i, h) for i, h in HOSTS.items()]
                     + [_host(i, h, terminated=True) for i, h in TERMINATED.items()])
        conn.execute(volume_groups.insert(), [
            {"id": group, "region": "us-east-1", "availability_zone": "us-east-1a", "created_at": NOW,
             "deleted_at": GONE if group in DELETED_VOLUME_GROUPS else None,
             "state": "deleted" if group in DELETED_VOLUME_GROUPS else "available"}
            for group in sorted(LIVE_VOLUME_GROUPS + DELETED_VOLUME_GROUPS)
        ])
        conn.execute(host_volumes.insert(), [
            {"volume_group_id": 1, "instance_id": "i-0aaaaaaaaaaaaaaa1", "mount_point": "/data", "attached_at": NOW},
            {"volume_group_id": 12, "instance_id": "i-0aaaaaaaaaaaaaaa1", "mount_point": "/logs", "attached_at": NOW},
            {"volume_group_id": 2, "instance_id": "i-0aaaaaaaaaaaaaaa2", "mount_point": "/data", "attached_at": NOW},
        ])
        sources = {5: ("web1.example.com", "i-0aaaaaaaaaaaaaaa1", "/data"),
                   55: ("web1.example.com", "i-0aaaaaaaaaaaaaaa1", "/archive"),
                   6: ("web2.example.com", "i-0aaaaaaaaaaaaaaa2", "/data"),
                   7: ("web1.example.com", "i-0aaaaaaaaaaaaaaa1", "/old")}
        conn.execute(snapshot_groups.insert(), [
            {"id": group, "volume_group_id": 1, "region": "us-east-1", "created_at": NOW,
             "deleted_at": GONE if group in DELETED_SNAPSHOT_GROUPS else None,
             "state": "deleted" if group in DELETED_SNAPSHOT_GROUPS else "completed",
             "source_hostname": host, "source_instance_id": instance, "source_mount_point": mount}
            for group, (host, instance, mount) in sorted(sources.items())
        ])
        conn.execute(snapshot_schedules.insert(), [
            {"id": schedule, "resource_type": "host", "hostname": "web1.example.com", "mount_point": "/data",
             "created_at": NOW, "deleted_at": GONE if schedule in DELETED_SCHEDULES else None}
            for schedule in sorted(LIVE_SCHEDULES + DELETED_SCHEDULES)
        ])


def install_and_fill(url):
    """Install the schema at ``url`` with the project's migrations and fill it."""
    from amslib.store.db import create_engine
    from amslib.store.migrate import install

    engine = create_engine(url)
    try:
        install(engine)
        fill(engine)
    finally:
        engine.dispose()
