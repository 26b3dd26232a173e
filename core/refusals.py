"""The base of the services' domain errors: a refusal with a message for people and a stable code.

The services know nothing of HTTP: each app's API records the status of its kinds
(``core.api_errors.answer_refusals``) and the API's exception handler answers with it; the pages show the message.
A refusal that says more than its message (the bad lines of a file, the file that was rejected) returns it from
``details``, and the API's answer carries those fields beside ``detail`` and ``code``.
"""


class Refusal(Exception):
    code = "refused"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def details(self) -> dict:
        """Fields of the API's answer beside ``detail`` and ``code`` (none unless a kind adds some)."""
        return {}
