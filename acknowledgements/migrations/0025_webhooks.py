"""Webhook endpoints and their deliveries."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("acknowledgements", "0024_api_tokens")]

    operations = [
        migrations.CreateModel(
            name="WebhookEndpoint",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("url", models.URLField(max_length=2000, verbose_name="URL")),
                ("events", models.JSONField(default=list, verbose_name="events")),
                ("active", models.BooleanField(default=True, verbose_name="active")),
                ("secret", models.CharField(editable=False, max_length=100)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now, verbose_name="created")),
                ("disabled_at", models.DateTimeField(blank=True, null=True, verbose_name="disabled")),
                (
                    "disabled_reason",
                    models.CharField(
                        blank=True,
                        choices=[
                            ("turned_off", "Turned off by an administrator"),
                            ("failing", "Turned off after failing for a day"),
                        ],
                        max_length=20,
                    ),
                ),
                ("failing_since", models.DateTimeField(blank=True, null=True)),
                (
                    "created_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={"verbose_name": "webhook endpoint", "ordering": ["-created_at", "-pk"]},
        ),
        migrations.CreateModel(
            name="WebhookDelivery",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("event_id", models.CharField(max_length=64)),
                ("event_type", models.CharField(max_length=50)),
                ("body", models.TextField()),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("pending", "Pending"),
                            ("sending", "Being sent"),
                            ("delivered", "Delivered"),
                            ("failed", "Failed"),
                        ],
                        default="pending",
                        max_length=10,
                    ),
                ),
                ("attempts", models.PositiveSmallIntegerField(default=0)),
                ("next_attempt_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("claim", models.CharField(blank=True, max_length=32)),
                ("last_response_code", models.PositiveSmallIntegerField(blank=True, null=True)),
                ("last_error", models.TextField(blank=True)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("last_attempt_at", models.DateTimeField(blank=True, null=True)),
                ("delivered_at", models.DateTimeField(blank=True, null=True)),
                (
                    "endpoint",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="deliveries",
                        to="acknowledgements.webhookendpoint",
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at", "-pk"],
                "indexes": [
                    models.Index(fields=["status", "next_attempt_at"], name="webhook_delivery_due"),
                    models.Index(fields=["endpoint", "-created_at"], name="webhook_delivery_log"),
                ],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("endpoint", "event_id"), name="one_delivery_per_endpoint_and_event"
                    )
                ],
            },
        ),
    ]
