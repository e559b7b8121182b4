from __future__ import annotations

from django.contrib import admin

from .models import (
    Channel,
    ChannelSpend,
    Contact,
    ContactTag,
    ImportJob,
    Product,
    Purchase,
    PurchaseItem,
    Tag,
    TagGroup,
)


class ContactTagInline(admin.TabularInline):
    model = ContactTag
    extra = 0
    raw_id_fields = ["tag", "tagged_by"]
    readonly_fields = ["source", "created_at"]


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "phone", "stage", "channel", "owner", "acquired_at", "purchase_count", "total_spent"]
    list_filter = ["stage", "channel", "intent_level", "marketing_consent"]
    search_fields = ["name", "phone", "external_id"]
    raw_id_fields = ["owner", "referred_by", "merged_into", "channel"]
    readonly_fields = [
        "stage",
        "first_purchase_at",
        "last_purchase_at",
        "purchase_count",
        "total_spent",
        "last_interaction_at",
        "referral_count",
        "created_at",
        "updated_at",
    ]
    inlines = [ContactTagInline]
    list_select_related = ["channel", "owner"]
    show_full_result_count = False


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "is_active"]
    list_filter = ["kind", "is_active"]


@admin.register(ChannelSpend)
class ChannelSpendAdmin(admin.ModelAdmin):
    list_display = ["channel", "start_date", "end_date", "amount"]
    list_filter = ["channel"]


class TagInline(admin.TabularInline):
    model = Tag
    extra = 0


@admin.register(TagGroup)
class TagGroupAdmin(admin.ModelAdmin):
    list_display = ["name", "exclusive", "sort_order"]
    inlines = [TagInline]


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["sku", "name", "price", "repurchase_cycle_days", "is_active"]
    search_fields = ["sku", "name"]


class PurchaseItemInline(admin.TabularInline):
    model = PurchaseItem
    extra = 0
    raw_id_fields = ["product"]


@admin.register(Purchase)
class PurchaseAdmin(admin.ModelAdmin):
    list_display = ["external_order_id", "contact", "purchased_at", "amount", "status"]
    list_filter = ["status"]
    search_fields = ["external_order_id"]
    raw_id_fields = ["contact"]
    inlines = [PurchaseItemInline]
    list_select_related = ["contact"]
    show_full_result_count = False


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "kind",
        "status",
        "filename",
        "total_rows",
        "created_count",
        "updated_count",
        "error_count",
        "created_at",
    ]
    list_filter = ["kind", "status"]
