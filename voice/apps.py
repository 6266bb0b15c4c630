from django.apps import AppConfig
from django.conf import settings
from django.core import checks

from chatdesk.assistant.costs import model_prices


class VoiceConfig(AppConfig):
    name = "voice"
    verbose_name = "Voice"

    def ready(self) -> None:
        checks.register(unpriced_call_models)


def unpriced_call_models(app_configs: object = None, **kwargs: object) -> list[checks.CheckMessage]:
    """A call model without a price is recorded as free: say so at startup, not only per call."""
    return [
        checks.Warning(
            f"{name} = {model!r} has no price in OPENAI_PRICES: its usage on calls is recorded as $0.",
            hint="Add it to OPENAI_PRICES (or OPENAI_PRICES_JSON). Conversations using it get price_missing.",
            id="voice.W001",
        )
        for name in ("OPENAI_REALTIME_MODEL", "OPENAI_REALTIME_TRANSCRIPTION_MODEL")
        if model_prices(model := getattr(settings, name)) is None
    ]
