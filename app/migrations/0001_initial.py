from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='Latest',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('value', fields.BigIntField()),
            ],
            options={'table': 'latest', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='User',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('username', fields.CharField(unique=True, max_length=255)),
                ('email', fields.CharField(max_length=255)),
                ('pw_hash', fields.CharField(max_length=255)),
            ],
            options={'table': 'user', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Follower',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('who', fields.ForeignKeyField('models.User', source_field='who_id', db_constraint=True, to_field='id', related_name='following', on_delete=OnDelete.CASCADE)),
                ('whom', fields.ForeignKeyField('models.User', source_field='whom_id', db_constraint=True, to_field='id', related_name='followers', on_delete=OnDelete.CASCADE)),
            ],
            options={'table': 'follower', 'app': 'models', 'unique_together': (('who', 'whom'),), 'indexes': [Index(fields=['whom_id'], name='follower_whom_idx')], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Message',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('author', fields.ForeignKeyField('models.User', source_field='author_id', db_constraint=True, to_field='id', related_name='messages', on_delete=OnDelete.CASCADE)),
                ('text', fields.TextField(unique=False)),
                ('pub_date', fields.BigIntField()),
                ('flagged', fields.BooleanField(default=False)),
            ],
            options={'table': 'message', 'app': 'models', 'indexes': [Index(fields=['pub_date', 'id'], name='message_public_idx'), Index(fields=['author_id', 'pub_date', 'id'], name='message_author_idx')], 'pk_attr': 'id'},
            bases=['Model'],
        ),
            # The simulator's `latest` starts at -1 ("nothing recorded yet") as a real row,
        # so recording a value is a single UPDATE on every database.
        ops.RunSQL(
            "INSERT INTO latest (id, value) VALUES (1, -1)",
            reverse_sql="DELETE FROM latest WHERE id = 1",
        ),
    ]
