"""The base of the services' domain errors: a refusal with a message for people and a stable code.

The services know nothing of HTTP: each app's API records the status of its kinds
(``core.api_errors.answer_refusals``) and the API's exception handler answers with it; the pages show the message.
"""


class Refusal(Exception):
    code = "refused"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message
