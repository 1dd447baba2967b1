"""What other apps do when billing creates a client.

Apps that build on billing register a hook here (in their AppConfig.ready), so that billing never
imports them: referrals enrols a new client in its provider's default program this way.
"""

from collections.abc import Callable

from billing.models import Client
from common.actors import Actor

ClientCreated = Callable[..., object]  # called as hook(client=..., actor=...)

_client_created: list[ClientCreated] = []


def on_client_created(hook: ClientCreated) -> ClientCreated:
    """Register `hook` (once) to run inside the transaction that creates a client."""
    if hook not in _client_created:
        _client_created.append(hook)
    return hook


def client_created(*, client: Client, actor: Actor) -> None:
    for hook in _client_created:
        hook(client=client, actor=actor)
