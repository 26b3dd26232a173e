"""API of webhooks (managers): register a URL for some events, remove it, read its delivery log."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.parsers import FormParser

from labeling.api.parsers import BoundedJSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from core.limits import MAX_ID
from core.api_errors import ERRORS
from core import outbound
from labeling.project_scope import ProjectScopedMixin
from labeling.models import Webhook, WebhookDelivery
from labeling.services import webhooks

LOG_LENGTH = 100


class WebhookSerializer(serializers.ModelSerializer):
    events = serializers.ListField(child=serializers.ChoiceField(choices=Webhook.Event.choices), min_length=1)
    url = serializers.URLField(max_length=1000)

    class Meta:
        model = Webhook
        fields = ["id", "url", "events", "target_judgments", "target_reached_at", "is_active", "created_at", "secret"]
        read_only_fields = ["id", "target_reached_at", "is_active", "created_at", "secret"]

    def validate_url(self, url):
        try:
            outbound.check_url(url)
        except outbound.OutboundRefused as exc:
            raise serializers.ValidationError(str(exc)) from None
        return url

    def validate(self, data):
        if Webhook.Event.JUDGMENTS_TARGET_REACHED in data["events"] and not data.get("target_judgments"):
            raise serializers.ValidationError({"target_judgments": ["Needed for judgments.target_reached."]})
        return data


class DeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = ["id", "event", "status", "attempts", "response_status", "error", "created_at", "last_attempt_at",
                  "delivered_at", "payload"]


class WebhookListView(ProjectScopedMixin, APIView):
    parser_classes = [BoundedJSONParser, FormParser]

    @extend_schema(responses={200: WebhookSerializer(many=True), **ERRORS}, tags=["webhooks"])
    def get(self, request, slug):
        """The project's webhooks (with their signing secrets)."""
        self.require_manager("see webhooks")
        return Response(WebhookSerializer(Webhook.objects.filter(project=self.project), many=True).data)

    @extend_schema(request=WebhookSerializer, responses={201: WebhookSerializer, **ERRORS}, tags=["webhooks"])
    def post(self, request, slug):
        """Register a URL for events; the answer holds the secret that signs its deliveries (HMAC-SHA256)."""
        self.require_manager("add webhooks")
        form = WebhookSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        hook = webhooks.register(self.project, form.validated_data["url"], form.validated_data["events"],
                                 user=request.user, target_judgments=form.validated_data.get("target_judgments"))
        return Response(WebhookSerializer(hook).data, status=201)


class WebhookMixin(ProjectScopedMixin):
    def hook(self, hook_id: int) -> Webhook:
        self.require_manager("manage webhooks")
        hook = Webhook.objects.filter(project=self.project, pk=hook_id).first() if hook_id <= MAX_ID else None
        if hook is None:
            raise NotFound("No such webhook in this project.")
        return hook


class WebhookDetailView(WebhookMixin, APIView):
    @extend_schema(responses={204: None, **ERRORS}, tags=["webhooks"])
    def delete(self, request, slug, hook_id):
        """Remove a webhook and its delivery log."""
        self.hook(hook_id).delete()
        return Response(status=204)


class WebhookDeliveriesView(WebhookMixin, APIView):
    @extend_schema(responses={200: DeliverySerializer(many=True), **ERRORS}, tags=["webhooks"])
    def get(self, request, slug, hook_id):
        """The webhook's latest deliveries (100), newest first, with attempts, answers and errors."""
        deliveries = self.hook(hook_id).deliveries.order_by("-id")[:LOG_LENGTH]
        return Response(DeliverySerializer(deliveries, many=True).data)
