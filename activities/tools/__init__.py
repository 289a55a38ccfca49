"""The tools every Stepgate worker ships with."""

from __future__ import annotations

from activities.registry import Tool
from activities.tools.artifact import artifact_read, artifact_write
from activities.tools.flow import flow_fail
from activities.tools.http import http_request
from activities.tools.llm import llm_chat
from activities.tools.notify import notify_webhook
from activities.tools.notify_email import notify_email
from activities.tools.notify_slack import notify_slack
from activities.tools.openapi import openapi_validate
from activities.tools.package import package_inspect
from activities.tools.script_check import script_check
from activities.tools.shell import shell_run
from activities.tools.transform import data_echo, data_transform


def builtin_tools() -> list[Tool]:
    """Every built-in tool, one Tool per name@version."""
    return [
        http_request,
        shell_run,
        llm_chat,
        notify_webhook,
        notify_slack,
        notify_email,
        artifact_write,
        artifact_read,
        data_transform,
        data_echo,
        flow_fail,
        openapi_validate,
        package_inspect,
        script_check,
    ]
