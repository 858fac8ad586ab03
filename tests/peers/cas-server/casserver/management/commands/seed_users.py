"""Creates the test users and their groups (idempotent)."""
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand

USERS = [
    # username, password, first name, last name, email, groups
    ("alice", "alice-password", "Alice", "Liddell", "alice@example.org", ["admins", "staff"]),
    ("bob", "bob-password", "Bob", "Builder", "bob@example.org", ["staff"]),
    ("carol", "carol-password", "Carol", "Danvers", "carol@example.org", []),
]


class Command(BaseCommand):
    help = "Create the test users alice, bob and carol."

    def handle(self, *args, **options):
        for username, password, first, last, email, groups in USERS:
            user, _ = User.objects.get_or_create(username=username)
            user.first_name, user.last_name, user.email = first, last, email
            user.set_password(password)
            user.save()
            user.groups.set([Group.objects.get_or_create(name=name)[0] for name in groups])
