"""A delivery's topics, and each stored reason's "topic": one name for one idea (both were
`interest(s)`).

The delivery's column is renamed. Each stored reason names the topic it matched under a
key, which the digest in a browser and the feeds read back: the key is rewritten in place,
in one statement. In JSON text a key is a quoted name followed by a colon; the same
characters inside a string value would have their quotes escaped, so only keys match.
Self-contained (frozen): it imports no application code.
"""

from django.db import migrations, models

OLD, NEW = '"interest":', '"topic":'


def rename_reason_key(apps, schema_editor, old=OLD, new=NEW):  # type: ignore[no-untyped-def]
    table = schema_editor.quote_name("digest_deliverypaper")
    if schema_editor.connection.vendor == "postgresql":
        sql = (
            f"UPDATE {table} SET reasons = replace(reasons::text, %s, %s)::jsonb "
            "WHERE strpos(reasons::text, %s) > 0"
        )
    else:  # SQLite keeps JSON as text
        sql = f"UPDATE {table} SET reasons = replace(reasons, %s, %s) WHERE instr(reasons, %s) > 0"
    schema_editor.execute(sql, [old, new, old])


def rename_reason_key_back(apps, schema_editor):  # type: ignore[no-untyped-def]
    rename_reason_key(apps, schema_editor, old=NEW, new=OLD)


class Migration(migrations.Migration):
    dependencies = [("digest", "0010_delivery_write_costs")]

    operations = [
        migrations.RenameField(model_name="delivery", old_name="interests", new_name="topics"),
        migrations.RunPython(rename_reason_key, rename_reason_key_back),
        migrations.AlterField(
            model_name="deliverypaper",
            name="reasons",
            field=models.JSONField(
                default=list, help_text="[{topic, field, snippet: [before, match, after]}]"
            ),
        ),
    ]
