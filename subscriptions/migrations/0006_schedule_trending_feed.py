"""Each reader's hour, time zone and weekday, how much trending they mix in, email or feed
only, and the secret of their private feed."""

import secrets

from django.db import migrations, models

import subscriptions.models
import subscriptions.schedule


def fill_feed_keys(apps, schema_editor):
    # Frozen here on purpose: a migration must not change when application code does.
    Subscriber = apps.get_model("subscriptions", "Subscriber")
    for subscriber in Subscriber.objects.filter(feed_key__isnull=True).only("id"):
        subscriber.feed_key = secrets.token_urlsafe(16)
        subscriber.save(update_fields=["feed_key"])


class Migration(migrations.Migration):
    dependencies = [("subscriptions", "0005_intent_apart")]

    operations = [
        migrations.AddField(
            model_name="subscriber",
            name="trending",
            field=models.CharField(
                choices=[
                    ("none", "Only my topics"),
                    ("few", "My topics plus the top few trending"),
                    ("only", "Trending only"),
                ],
                default="none",
                help_text="How much trending to mix in; readers without topics get trending only.",
                max_length=8,
            ),
        ),
        migrations.AddField(
            model_name="subscriber",
            name="channel",
            field=models.CharField(
                choices=[("email", "Email (and the private feed)"), ("feed", "Feed only, no email")],
                default="email",
                max_length=8,
            ),
        ),
        migrations.AddField(
            model_name="subscriber",
            name="time_zone",
            field=models.CharField(
                default=subscriptions.schedule.default_timezone,
                help_text="IANA name, e.g. Europe/Berlin.",
                max_length=64,
            ),
        ),
        migrations.AddField(
            model_name="subscriber",
            name="send_hour",
            field=models.PositiveSmallIntegerField(
                default=subscriptions.schedule.default_hour,
                help_text="Local hour (0–23) the digest arrives.",
            ),
        ),
        migrations.AddField(
            model_name="subscriber",
            name="send_weekday",
            field=models.PositiveSmallIntegerField(
                default=subscriptions.schedule.default_weekday,
                help_text="Weekly readers: ISO weekday (1 = Monday).",
            ),
        ),
        migrations.AddField(
            model_name="subscriber",
            name="next_due_at",
            field=models.DateTimeField(
                blank=True,
                help_text="When the next digest is owed (UTC). Empty: worked out at the next run.",
                null=True,
            ),
        ),
        migrations.AddIndex(
            model_name="subscriber",
            index=models.Index(fields=["status", "next_due_at"], name="subscriber_due"),
        ),
        migrations.AddField(
            model_name="subscriber",
            name="feed_key",
            field=models.CharField(editable=False, max_length=32, null=True),
        ),
        migrations.RunPython(fill_feed_keys, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="subscriber",
            name="feed_key",
            field=models.CharField(
                default=subscriptions.models.new_subscriber_key,
                editable=False,
                help_text="The secret in the private feed's URL; a new one kills the old URL.",
                max_length=32,
                unique=True,
            ),
        ),
    ]
