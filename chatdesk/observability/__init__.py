"""What operators watch: the Prometheus metrics and the log context (request id, conversation).

Below every layer: the booking domain, the conversation record, the assistant and the doors
all import it, and it imports none of them (pyproject.toml's contracts). The parts that read
the database or Django's request (the /metrics view and its collector, the log formatter, the
request-id middleware) are wiring, in chatdesk/metrics_view.py, chatdesk/log_lines.py and
chatdesk/request_ids.py.
"""
