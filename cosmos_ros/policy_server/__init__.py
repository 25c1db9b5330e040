"""Run the model out of the ROS process: a gRPC policy server and the planner's client backend.

- ``wire``: the messages, versions and handshake check (pure: NumPy + protobuf);
- ``client``: ``RemotePolicyBackend``, the ``server`` backend of ``cosmos_ros.runtime.policy.BACKENDS``
  (NumPy + protobuf + gRPC; no torch), valid on Python 3.10;
- ``server`` / ``__main__``: the server process (``python -m cosmos_ros.policy_server``), which loads the
  model with the existing runtime.

Nothing is imported here, so importing ``cosmos_ros.policy_server.errors`` stays free of gRPC.
"""
