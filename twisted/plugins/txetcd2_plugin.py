"""
The ``etcd-watch`` twistd plugin: ``twistd -n etcd-watch --endpoints URL --prefix KEY``.

Only a :class:`ServiceMaker` lives here, so that ``twistd --help`` stays fast; the real code is
imported from :mod:`txetcd2._tap` when the plugin is used.
"""

from twisted.application.service import ServiceMaker

etcd_watch = ServiceMaker(
    "txetcd2 etcd-watch",
    "txetcd2._tap",
    "Watch an etcd v2 key or directory and print every change as a JSON line.",
    "etcd-watch",
)
