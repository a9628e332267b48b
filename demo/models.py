"""A small sample domain for the demo orchestrations."""
from django.conf import settings
from django.db import models
from django.urls import reverse


class Employee(models.Model):
    class Status(models.TextChoices):
        HIRED = "hired", "Hired"
        ACTIVE = "active", "Active"
        LEFT = "left", "Left"

    class Department(models.TextChoices):
        ENGINEERING = "engineering", "Engineering"
        SALES = "sales", "Sales"
        FINANCE = "finance", "Finance"
        OPERATIONS = "operations", "Operations"

    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    email = models.EmailField()
    department = models.CharField(max_length=20, choices=Department.choices, default=Department.ENGINEERING)
    title = models.CharField(max_length=100, blank=True)
    start_date = models.DateField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.HIRED)
    needs_laptop = models.BooleanField(default=True)
    remote = models.BooleanField(default=False)
    manager = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    accounts_created = models.BooleanField(default=False)

    class Meta:
        ordering = ["last_name", "first_name"]

    def __str__(self):
        return f"{self.first_name} {self.last_name}"

    def get_absolute_url(self):
        return reverse("demo:employee", args=[self.pk])


class Opportunity(models.Model):
    class Stage(models.TextChoices):
        PROSPECTING = "prospecting", "Prospecting"
        NEGOTIATION = "negotiation", "Negotiation"
        APPROVAL = "approval", "Approval requested"
        APPROVED = "approved", "Approved"
        CLOSED_WON = "closed_won", "Closed won"
        CLOSED_LOST = "closed_lost", "Closed lost"

    name = models.CharField(max_length=200)
    account = models.CharField(max_length=200)
    amount = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    discount_percent = models.DecimalField(max_digits=5, decimal_places=2, default=0)
    stage = models.CharField(max_length=20, choices=Stage.choices, default=Stage.PROSPECTING)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    approval_notes = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "opportunities"

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("demo:opportunity", args=[self.pk])


class EquipmentRequest(models.Model):
    employee = models.ForeignKey(Employee, on_delete=models.CASCADE, related_name="equipment_requests")
    item = models.CharField(max_length=100)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{self.item} for {self.employee}"
