"""Server-side API accounting for the rig's EC2 endpoint.

Every request that reaches moto's ``BaseResponse.call_action`` is counted per
(service, region, action), except the rig's own bookkeeping requests (see
``tests.rig.faults.INTERNAL_USER_AGENT``).  The counter is thread-safe: the
server answers requests in several threads.
"""

import threading
from collections import Counter


class ApiCounter:
    def __init__(self):
        self._lock = threading.Lock()
        self._counts = Counter()

    def record(self, service, region, action):
        with self._lock:
            self._counts[(service, region, action)] += 1

    def counts(self, region=None, service="ec2"):
        """Requests per action name, e.g. ``{"DescribeVolumes": 3}``.

        ``region=None`` sums over all regions; ``service=None`` over all services.
        """
        out = Counter()
        with self._lock:
            for (svc, reg, action), n in self._counts.items():
                if service is not None and svc != service:
                    continue
                if region is not None and reg != region:
                    continue
                out[action] += n
        return dict(out)

    def total(self, region=None, service="ec2"):
        return sum(self.counts(region=region, service=service).values())

    def reset(self):
        with self._lock:
            self._counts.clear()
