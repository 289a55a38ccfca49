"""`python -m api`: serve the API with uvicorn on STEPGATE_API_HOST:STEPGATE_API_PORT."""

from __future__ import annotations

import structlog
import uvicorn

from activities import tracing
from activities.config import get_settings
from activities.logs import configure_logging
from activities.registry import ToolError
from api.app import create_app
from workflows.builds import package_version
from workflows.client import exit_now

log = structlog.get_logger("stepgate.api")
# Seconds a stopping API gives requests in flight (decisions, status reads) before it closes
# whatever is still open.
SHUTDOWN_GRACE_S = 5


def main() -> int:
    settings = get_settings()
    configure_logging(settings)
    try:
        tracing.configure("stepgate-api", package_version())
        # SIGHUP reloads the catalog in this process (a bad definition file never stops it), and
        # the document checkers start now, not during the first (perhaps hostile) requests.
        app = create_app(settings, sighup=True, warm=True)
    except (ToolError, ValueError) as err:
        log.error("startup refused", error=str(err))
        return 2
    uvicorn.run(
        app,
        host=settings.stepgate_api_host,
        port=settings.stepgate_api_port,
        log_config=None,  # keep the structlog handlers configure_logging installed
        proxy_headers=True,
        # A SIGTERM ends the process even while /events streams are open (they never finish by
        # themselves): requests in flight get this long, then the streams are cut and clients
        # reconnect elsewhere with Last-Event-ID. Without it a rolling restart waited for ever.
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
    )
    tracing.flush()
    return 0


if __name__ == "__main__":
    exit_now(main())
