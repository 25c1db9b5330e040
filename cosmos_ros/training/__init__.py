"""Training a tiny Cosmos 3 policy on simulated demonstrations (pure Python + torch; no ROS).

- ``demos``: the demonstrations file format (``make_sim_demos`` writes it) and a synthetic stand-in.
- ``normalization``: action statistics computed from the data, and the action-space profile they make.
- ``flow``: the flow-matching objective of ``Cosmos3OmniPipeline``'s sampler, on the pipeline's own packing.
"""
