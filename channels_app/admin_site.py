"""The admin site: a home page that shows how the server is doing (the last
24 hours of messages, running campaigns, channels down, needing attention or disabled, deliveries due)
and lists the configuration by task instead of alphabetically.

Every count reads through `channels_app.selectors.restrict`, so a member of
tenant 1 counts only tenant 1's rows, and a tile is shown only to a user who
may open the page it links to."""

from datetime import timedelta

from django import forms
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.urls import reverse
from django.utils import timezone

# (group title, what it is for, [(app label, model object name), ...]) in the order the home page shows them.
GROUPS = [
    ("Channels", "Where messages come from and go to.", [
        ("channels_app", "Channel"), ("channels_app", "Tenant"), ("channels_app", "OptionValue"),
    ]),
    ("Content", "What agents, strategies and campaigns send.", [
        ("channels_app", "StandardResponse"), ("channels_app", "StandardResponseCategory"),
        ("channels_app", "Attachment"), ("channels_app", "BusinessAttribute"),
        ("channels_app", "BusinessAttributeValue"), ("channels_app", "WhatsAppTemplate"),
    ]),
    ("Routing", "Queues routed by an outside system or by this server, to its agents.", [
        ("channels_app", "Queue"),
    ]),
    ("Campaigns", "One standard response sent to many customers; segments choose them among the contacts.", [
        ("channels_app", "Campaign"), ("channels_app", "Segment")]),
    ("Conversations", "Customers, their sessions and every message, with its webhook delivery.", [
        ("channels_app", "Interaction"), ("channels_app", "Contact"), ("channels_app", "Message"),
        ("channels_app", "Delivery"), ("channels_app", "MessageAttachment"),
    ]),
    ("Access", "Who may do what, and what they did.", [
        ("auth", "User"), ("auth", "Group"), ("channels_app", "AuditEntry"), ("authtoken", "TokenProxy"),
    ]),
    ("System", "The scheduler's internals: periodic tasks run by Celery beat.", [
        ("django_celery_beat", "PeriodicTask"), ("django_celery_beat", "IntervalSchedule"),
        ("django_celery_beat", "CrontabSchedule"), ("django_celery_beat", "ClockedSchedule"),
        ("django_celery_beat", "SolarSchedule"),
    ]),
]

# Shown to superusers only: the scheduler's tables and raw API tokens are not day-to-day configuration.
SUPERUSER_ONLY_APPS = {"django_celery_beat", "authtoken", "axes"}


def _visible(app_label: str, user) -> bool:
    return user.is_superuser or app_label not in SUPERUSER_ONLY_APPS


def grouped_app_list(app_list: list[dict], user) -> list[dict]:
    """The stock app list (what the user may see) regrouped by task; a model
    in no group ends up in "Other" so nothing the user may open disappears."""
    models = {
        (app["app_label"], model["object_name"]): model
        for app in app_list if _visible(app["app_label"], user)
        for model in app["models"]
    }
    groups = []
    for title, description, members in GROUPS:
        found = [models.pop(member) for member in members if member in models]
        if found:
            groups.append({
                "name": title, "app_label": title.lower(), "description": description, "models": found,
                "app_url": "", "has_module_perms": True,
            })
    if models:
        groups.append({"name": "Other", "app_label": "other", "description": "", "models": list(models.values()),
                       "app_url": "", "has_module_perms": True})
    return groups


def dashboard_tiles(user) -> list[dict]:
    """The home page's numbers, each linking to the list that explains it."""
    from channels_app.models import Campaign, Channel, Delivery, Message
    from channels_app.selectors import restrict

    now = timezone.now()
    since = now - timedelta(hours=24)
    day_query = f"created_at__gte={since:%Y-%m-%d %H:%M:%S}"
    tiles = []

    def tile(model, perm_model: str, label: str, count: int, query: str, tone: str = "", note: str = ""):
        if not user.has_perm(f"channels_app.view_{perm_model}"):
            return
        url = reverse(f"admin:channels_app_{model._meta.model_name}_changelist")
        tiles.append({
            "label": label, "count": count, "url": f"{url}?{query}" if query else url,
            "tone": tone if count else "", "note": note,
        })

    messages = restrict(Message.objects.filter(created_at__gte=since), user)
    inbound = messages.filter(direction="inbound").count()
    outbound = messages.filter(direction="outbound").count()
    failed = messages.filter(status="failed").count()
    tile(Message, "message", "Messages in (24 h)", inbound, f"direction__exact=inbound&{day_query}",
         note="from customers")
    tile(Message, "message", "Messages out (24 h)", outbound, f"direction__exact=outbound&{day_query}",
         note="to customers")
    tile(Message, "message", "Failures (24 h)", failed, f"status__exact=failed&{day_query}", tone="bad",
         note="messages that could not be delivered")
    running = restrict(Campaign.objects.filter(state="running"), user).count()
    tile(Campaign, "campaign", "Campaigns running", running, "state__exact=running", tone="busy",
         note="sending now")
    channels = restrict(Channel.objects.all(), user)
    down = channels.filter(down_since__isnull=False).count()
    tile(Channel, "channel", "Channels down", down, "down_since__isnull=False", tone="bad",
         note="their circuit is open (see a channel's page)")
    attention = channels.exclude(needs_attention="").count()
    tile(Channel, "channel", "Channels needing attention", attention, "needs_attention__gt=", tone="bad",
         note="e.g. a WhatsApp token Meta refused")
    disabled = channels.filter(enabled=False).count()
    tile(Channel, "channel", "Channels disabled", disabled, "enabled__exact=0", tone="bad",
         note="refuse messages until enabled")
    due = restrict(Delivery.objects.filter(state="pending", next_attempt_at__lte=now), user).count()
    tile(Delivery, "delivery", "Deliveries due", due, "state__exact=pending", tone="busy",
         note="webhooks waiting for their next attempt")
    return tiles


class SignInForm(AdminAuthenticationForm):
    """The admin's login. A wrong username or password gets Django's words; a right password for an
    account that may not sign in gets what the account lacks (staff status, a tenant, a role:
    `channels_app.services.users.user_sign_in_refusal`), never "enter a correct password"."""

    def confirm_login_allowed(self, user):
        from channels_app.services.users import user_sign_in_refusal

        AuthenticationForm.confirm_login_allowed(self, user)  # an inactive account (not reached: never authenticated)
        refusal = user_sign_in_refusal(user=user)
        if refusal:
            raise forms.ValidationError(refusal, code="no_access")


class DmsAdminSite(admin.AdminSite):
    site_header = "Digital Messaging Server"
    site_title = "Digital Messaging Server"
    index_title = "Home"
    index_template = "admin/dms_index.html"
    login_form = SignInForm
    login_template = "admin/dms_login.html"  # the stock form, with the single sign-on button
    # The home page lists everything by task; without the sidebar the change lists get the whole width.
    enable_nav_sidebar = False

    def login(self, request, extra_context=None):
        """The stock login page, signing in through `channels_app.sign_in` (single sign-on, second factor)."""
        from django.contrib.auth import REDIRECT_FIELD_NAME
        from django.http import HttpResponseRedirect

        from channels_app.sign_in.views import SignInView

        if request.method == "GET" and self.has_permission(request):
            return HttpResponseRedirect(reverse("admin:index", current_app=self.name))
        context = {
            **self.each_context(request), "title": "Log in", "subtitle": None,
            "app_path": request.get_full_path(), "username": request.user.get_username(),
        }
        if REDIRECT_FIELD_NAME not in request.GET and REDIRECT_FIELD_NAME not in request.POST:
            context[REDIRECT_FIELD_NAME] = reverse("admin:index", current_app=self.name)
        context.update(extra_context or {})
        request.current_app = self.name
        return SignInView.as_view(extra_context=context, authentication_form=self.login_form,
                                  template_name=self.login_template)(request)

    def index(self, request, extra_context=None):
        context = {"dashboard_tiles": dashboard_tiles(request.user), **(extra_context or {}),
                   "reports_url": reverse("admin:channels_app_reports", current_app=self.name)
                   if request.user.has_perm("channels_app.view_reports") else None}
        return super().index(request, extra_context=context)

    # Pages of the site beyond the models' (the Reports page): callables (site) -> url patterns, added by the
    # admin modules that own them (admin/reports.py), so this module imports none of them.
    extra_urls: list = []

    def get_urls(self):
        return [*(pattern for urls in self.extra_urls for pattern in urls(self)), *super().get_urls()]

    def get_app_list(self, request, app_label=None):
        app_list = super().get_app_list(request, app_label)
        if app_label is not None:
            return [app for app in app_list if _visible(app["app_label"], request.user)]
        return grouped_app_list(app_list, request.user)
