"""Factories (factory_boy) for the objects tests build: tenants, channels,
standard responses and their categories, contacts, interactions, campaigns.

Each gives only what the model requires; a test names every value its meaning
depends on. Objects with rules of their own are made by their service, as the
server makes them: a channel through `channel_save` (endpoints, the inbound
route, validation, the secret), an interaction through `interaction_create`
(its id, type and subtype) with its contact from `contact_identify` (by phone
number on WhatsApp and SMS).

    channel = ChannelFactory(tenant=tenant, channel_id="sms", media_type="sms", transport="webhook",
                             business_id="0123456789", webhook_url=url, secret=SECRET)
    interaction = InteractionFactory(channel=channel, client_id="15556667777", outbound=True)
"""

import factory
from factory.django import DjangoModelFactory

from channels_app.choices import MediaType, Transport
from channels_app.models import (
    Campaign,
    Channel,
    Contact,
    Interaction,
    StandardResponse,
    StandardResponseCategory,
    Tenant,
)
from channels_app.services.channels import channel_save
from channels_app.services.contacts import contact_identify
from channels_app.services.interactions import interaction_create


class TenantFactory(DjangoModelFactory):
    """Tenant 1 ("Environment", the one the demo data and queue keys "1:..." use) unless told; got or created."""

    class Meta:
        model = Tenant
        django_get_or_create = ("id",)

    id = 1
    name = "Environment"


class ChannelFactory(DjangoModelFactory):
    """A WhatsApp channel on the simulator by default; `endpoints` and `inbound_route_by_call` go to
    `channel_save` with the channel."""

    class Meta:
        model = Channel

    channel_id = factory.Sequence(lambda n: f"channel-{n}")
    name = factory.LazyAttribute(lambda channel: channel.channel_id)
    tenant = factory.SubFactory(TenantFactory)
    media_type = MediaType.WHATSAPP
    transport = Transport.SIMULATOR
    business_id = "19251112222"

    @classmethod
    def _create(cls, model_class, *args, endpoints=None, inbound_route_by_call=None, **fields):
        return channel_save(channel=model_class(*args, **fields), endpoints=endpoints,
                            inbound_route_by_call=inbound_route_by_call)


class StandardResponseCategoryFactory(DjangoModelFactory):
    class Meta:
        model = StandardResponseCategory

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Category {n}")


class StandardResponseFactory(DjangoModelFactory):
    """A text response "Hello"; its id is the model's generated one unless given."""

    class Meta:
        model = StandardResponse

    tenant = factory.SubFactory(TenantFactory)
    name = "Hello"
    content_type = "text"
    body = "Hello"


class ContactFactory(DjangoModelFactory):
    """A contact as stored, without the identification rules (see InteractionFactory for those)."""

    class Meta:
        model = Contact

    tenant = factory.SubFactory(TenantFactory)
    client_id = "15556667777"


class InteractionFactory(DjangoModelFactory):
    """An open interaction of `client_id` on `channel`, in queue 1:session-chat, with no attached data; its
    contact is the one `contact_identify` finds or creates unless given."""

    class Meta:
        model = Interaction

    channel = factory.SubFactory(ChannelFactory)
    client_id = "15556667777"
    contact = factory.LazyAttribute(lambda made: contact_identify(channel=made.channel, client_id=made.client_id))
    queue = "1:session-chat"
    outbound = True
    user_data = factory.Dict({})

    @classmethod
    def _create(cls, model_class, *args, **fields):
        return interaction_create(**fields)


class CampaignFactory(DjangoModelFactory):
    """A draft campaign; its standard response is of the channel's tenant unless given."""

    class Meta:
        model = Campaign

    name = factory.Sequence(lambda n: f"Campaign {n}")
    channel = factory.SubFactory(ChannelFactory)
    standard_response = factory.SubFactory(StandardResponseFactory, tenant=factory.SelfAttribute("..channel.tenant"))
