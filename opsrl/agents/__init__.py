"""opsrl's own learning algorithms, each an SB3 subclass in the sb3-contrib pattern.

One subpackage per algorithm (``<algo>.py`` with the algorithm class, ``policies.py``,
``buffers.py`` where it needs one); the agent registry (:mod:`opsrl.registry`) names them, e.g.
``pdppo`` -> :class:`opsrl.agents.pdppo.PDPPO`. Subpackages are imported on demand so that
``import opsrl`` stays light.
"""
