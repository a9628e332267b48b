from django.contrib import admin

from .models import Employee, EquipmentRequest, Opportunity


class EquipmentRequestInline(admin.TabularInline):
    model = EquipmentRequest
    extra = 0
    readonly_fields = ("created_at",)


@admin.register(Employee)
class EmployeeAdmin(admin.ModelAdmin):
    list_display = ("__str__", "email", "department", "status", "remote", "accounts_created", "start_date")
    list_filter = ("status", "department", "remote", "accounts_created")
    search_fields = ("first_name", "last_name", "email", "title")
    raw_id_fields = ("manager",)
    inlines = [EquipmentRequestInline]


@admin.register(Opportunity)
class OpportunityAdmin(admin.ModelAdmin):
    list_display = ("name", "account", "amount", "discount_percent", "stage", "owner")
    list_filter = ("stage",)
    search_fields = ("name", "account")
    raw_id_fields = ("owner",)


@admin.register(EquipmentRequest)
class EquipmentRequestAdmin(admin.ModelAdmin):
    list_display = ("item", "employee", "created_at")
    search_fields = ("item", "employee__first_name", "employee__last_name")
    list_select_related = ("employee",)
