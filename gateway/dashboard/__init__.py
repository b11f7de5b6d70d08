"""The built-in dashboard under /_gateway/: server-rendered HTML, behind the admin tokens."""

from gateway.dashboard.routes import dashboard_router

__all__ = ["dashboard_router"]
