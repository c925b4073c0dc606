from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import PartialIndex

class Migration(migrations.Migration):
    dependencies = [('models', '0001_initial')]

    initial = False

    operations = [
        ops.AddIndex(
            model_name='Message',
            index=PartialIndex(fields=['author_id', 'pub_date', 'id'], name='message_author_unflagged_idx', condition={'flagged': False}),
        ),
    ]
