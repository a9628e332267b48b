"""Versioned definitions: one row per version, at most one active.

Shared by flows and orchestrations. An active or obsolete version is frozen:
its own row may only change status, and its parts (variables, screens,
stages, steps...) may not change at all. Editing means "new version from
this one", which copies everything into a draft.
"""
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone


class DefinitionStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    ACTIVE = "active", "Active"
    OBSOLETE = "obsolete", "Obsolete"


class FrozenDefinition(ValidationError):
    """Raised when code tries to change an active or obsolete version."""


class VersionedDefinition(models.Model):
    api_name = models.SlugField(max_length=100, db_index=True, help_text="Stable name; versions share it.")
    version = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=10, choices=DefinitionStatus.choices, default=DefinitionStatus.DRAFT)
    label = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    activated_at = models.DateTimeField(null=True, blank=True, editable=False)

    # Fields that may change on a frozen version (the lifecycle itself).
    LIFECYCLE_FIELDS = {"status", "activated_at"}

    class Meta:
        abstract = True
        ordering = ["api_name", "-version"]

    @classmethod
    def versioned_constraints(cls, prefix):
        return [
            models.UniqueConstraint(fields=["api_name", "version"], name=f"{prefix}_unique_version"),
            models.UniqueConstraint(
                fields=["api_name"], condition=Q(status="active"), name=f"{prefix}_one_active_version"
            ),
        ]

    def __str__(self):
        return f"{self.api_name} v{self.version} ({self.status})"

    @property
    def is_editable(self):
        return self.status == DefinitionStatus.DRAFT

    def save(self, *args, **kwargs):
        if self.pk and not kwargs.get("force_insert"):
            stored = type(self).objects.filter(pk=self.pk).values_list("status", flat=True).first()
            if stored and stored != DefinitionStatus.DRAFT:
                update_fields = kwargs.get("update_fields")
                if update_fields is None or not set(update_fields) <= self.LIFECYCLE_FIELDS:
                    raise FrozenDefinition(
                        f"{self.api_name} v{self.version} is {stored} and cannot be edited; "
                        "make a new version from it instead."
                    )
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        if self.status == DefinitionStatus.ACTIVE:
            raise FrozenDefinition(f"{self.api_name} v{self.version} is active and cannot be deleted.")
        return super().delete(*args, **kwargs)

    def set_lifecycle_status(self, status, now=None):
        """Write ``status`` — the one change a frozen version allows — stamping ``activated_at`` when active.

        An obsolete version keeps the time it was activated. No validation
        here: activating goes through ``orchestration.lifecycle.activate``.
        """
        self.status = status
        if status == DefinitionStatus.ACTIVE:
            self.activated_at = now or timezone.now()
        self.save(update_fields=["status", "activated_at"])

    @classmethod
    def next_version_number(cls, api_name):
        latest = cls.objects.filter(api_name=api_name).aggregate(m=models.Max("version"))["m"]
        return (latest or 0) + 1


class DefinitionPart(models.Model):
    """A row that belongs to a versioned definition and freezes with it."""

    class Meta:
        abstract = True

    def owning_definition(self):  # pragma: no cover - each subclass says
        raise NotImplementedError

    def _check_editable(self):
        owner = self.owning_definition()
        if owner is not None and owner.pk:
            status = type(owner).objects.filter(pk=owner.pk).values_list("status", flat=True).first()
            if status and status != DefinitionStatus.DRAFT:
                raise FrozenDefinition(
                    f"{owner.api_name} v{owner.version} is {status} and cannot be edited; "
                    "make a new version from it instead."
                )

    def save(self, *args, **kwargs):
        self._check_editable()
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        self._check_editable()
        return super().delete(*args, **kwargs)
