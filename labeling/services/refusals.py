"""The base of the services' domain errors: a refusal with a message for people and a stable code.

The services know nothing of HTTP: the API maps each kind to a status (``REFUSAL_STATUS`` in
``labeling/api/views.py``), and the pages show the message.
"""


class Refusal(Exception):
    code = "refused"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message
