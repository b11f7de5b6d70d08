"""Small request-scoped dependencies shared by every feature."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from features.core.settings import Settings


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]
