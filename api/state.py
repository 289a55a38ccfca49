"""What the app holds for its lifetime: settings, tools, catalog, keys and the Temporal link."""

from __future__ import annotations

from dataclasses import dataclass, field

from temporalio.converter import PayloadCodec

from activities.artifacts import ArtifactStore
from activities.config import Settings
from activities.memory import MemoryStore
from activities.registry import ToolRegistry
from api.admission import ParsePool
from api.auth import KeyStore
from api.catalog_live import LiveCatalog
from api.events import StatusHub
from api.gates_open import GatesOpen
from api.limits import KeyLimits, RunLanes
from api.metrics import HttpMetrics
from api.slack_signature import Replays
from api.status import StatusReads
from api.temporal import TemporalLink
from api.watchdog import CancelWatch


@dataclass
class ApiState:
    settings: Settings
    registry: ToolRegistry
    # Reloaded while the API runs; a request reads one snapshot of it (deps.get_catalog).
    catalog: LiveCatalog
    keys: KeyStore
    temporal: TemporalLink
    # The payload codec the converter uses, for the codec server; None when payloads are plain.
    codec: PayloadCodec | None
    # Where runs' archived audit chunks are read from (the workers' artifact store).
    artifacts: ArtifactStore
    # Per-principal request rate and live streams, per-run decisions in flight (this process).
    limits: KeyLimits
    lanes: RunLanes
    # Where request documents are parsed and validated, a few places per principal.
    parse: ParsePool
    # The memory of governed runs (its engine opens connections on demand).
    memory: MemoryStore
    # Runs waiting at a gate, counted by visibility when /metrics is scraped.
    gates_open: GatesOpen
    # Shared status pollers for /events subscribers.
    hub: StatusHub = field(default_factory=StatusHub)
    # Concurrent GET /workflows/{id} of one run share a query.
    reads: StatusReads = field(default_factory=StatusReads)
    # Cancelled runs that may be stuck, terminated if they do not act on it in time.
    cancels: CancelWatch = field(default_factory=CancelWatch)
    # Slack interactions accepted lately, so that an exact replay is refused (this process).
    slack_replays: Replays = field(default_factory=Replays)
    # Requests by route template and status, with latency (GET /metrics).
    http_metrics: HttpMetrics = field(default_factory=HttpMetrics)
