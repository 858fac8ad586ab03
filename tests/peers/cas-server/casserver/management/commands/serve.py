"""`runserver --noreload` on 127.0.0.1 that exits when its owner process is gone."""
import os
import threading
import time

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError


def watch(owner):
    while True:
        try:
            os.kill(owner, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:
            pass  # alive, owned by someone else
        time.sleep(0.5)


class Command(BaseCommand):
    help = "Serve on 127.0.0.1:PORT; with --owner-pid, exit when that process exits."

    def add_arguments(self, parser):
        parser.add_argument("port", type=int)
        parser.add_argument("--owner-pid", type=int)

    def handle(self, *args, port, owner_pid, **options):
        if not 0 < port < 65536:
            raise CommandError("bad port")
        if owner_pid:
            threading.Thread(target=watch, args=(owner_pid,), daemon=True).start()
        call_command("runserver", f"127.0.0.1:{port}", use_reloader=False, use_threading=True)
