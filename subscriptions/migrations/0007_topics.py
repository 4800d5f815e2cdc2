"""A subscriber's topics: one name for one idea (the field was `interests`).

A rename of the column: no rows are rewritten.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("subscriptions", "0006_schedule_trending_feed")]

    operations = [
        migrations.RenameField(model_name="subscriber", old_name="interests", new_name="topics"),
    ]
