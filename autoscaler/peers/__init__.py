"""Peers: other autoscalers' decision code, run on rva snapshots so rva can be compared with them.

``ray_scheduler`` drives Ray 2.60's own v2 ``ResourceDemandScheduler`` (horizontal, and with its
in-place pod resize "IPPR" on). It is used by ``rva bench planner`` and ``rva simulate --policy
horizontal|ray-ippr``. Nothing under ``autoscaler.plan`` may import this package: the planner stays
pure and independent of Ray.
"""
