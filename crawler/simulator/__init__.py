"""A faithful fake of the LearnUpon REST API v1, serving many portals under one port.

Used by integration tests, benchmarks and `idgraph demo`; start with `run_simulator` and `make_portals`.
"""

from .app import PortalStats, SimulatedPortal, build_app
from .dataset import ENROLLMENT_STATUSES, PortalData, PortalSpec, generate_portal
from .faults import FaultConfig
from .population import IDP_DISABLED, IDP_STATUSES, Person, generate_population
from .server import RunningSimulator, make_portals, portal_password, run_simulator, serve_forever

__all__ = [
    "ENROLLMENT_STATUSES",
    "IDP_DISABLED",
    "IDP_STATUSES",
    "FaultConfig",
    "Person",
    "PortalData",
    "PortalSpec",
    "PortalStats",
    "RunningSimulator",
    "SimulatedPortal",
    "build_app",
    "generate_population",
    "generate_portal",
    "make_portals",
    "portal_password",
    "run_simulator",
    "serve_forever",
]
