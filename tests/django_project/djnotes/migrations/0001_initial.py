from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies: list[tuple[str, str]] = []
    operations = [
        migrations.CreateModel(
            name="Note",
            fields=[("id", models.BigAutoField(primary_key=True, serialize=False)),
                    ("text", models.CharField(max_length=200))],
        ),
        migrations.CreateModel(
            name="Reading",
            fields=[("id", models.BigAutoField(primary_key=True, serialize=False)),
                    ("note_id", models.BigIntegerField())],
        ),
    ]
