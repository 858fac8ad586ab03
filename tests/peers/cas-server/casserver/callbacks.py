"""Attributes released to services, besides mama_cas's user name attributes."""


def profile_and_groups(user, service):
    # A list becomes repeated <cas:groups> elements in the CAS 3 answer.
    return {
        "email": user.email,
        "displayName": user.get_full_name(),
        "groups": sorted(group.name for group in user.groups.all()),
    }
