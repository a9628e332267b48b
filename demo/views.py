"""Demo record pages: lists, details with the Work Guide, and small edit forms.

Saving a record here is an ordinary ``Model.save()``, so record-triggered
orchestrations start from these forms exactly as they would from any other
code path.
"""
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from .forms import EmployeeForm, OpportunityForm, OpportunityStageForm
from .models import Employee, Opportunity

PAGE_SIZE = 25


def _page(request, queryset):
    return Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))


@login_required
def employee_list(request):
    query = request.GET.get("q", "").strip()
    status = request.GET.get("status", "")
    employees = Employee.objects.all()
    if query:
        employees = employees.filter(
            Q(first_name__icontains=query) | Q(last_name__icontains=query) | Q(email__icontains=query)
        )
    if status in Employee.Status.values:
        employees = employees.filter(status=status)
    return render(request, "demo/employee_list.html", {
        "page": _page(request, employees), "q": query, "status": status, "statuses": Employee.Status.choices,
    })


@login_required
def employee_detail(request, pk):
    record = get_object_or_404(Employee.objects.select_related("manager"), pk=pk)
    return render(request, "demo/employee_detail.html", {
        "record": record,
        "equipment": record.equipment_requests.order_by("-created_at"),
    })


@login_required
@require_http_methods(["GET", "POST"])
def employee_create(request):
    form = EmployeeForm(request.POST or None, initial={"manager": request.user.pk})
    if request.method == "POST" and form.is_valid():
        employee = form.save()
        messages.success(request, f"{employee} was added.")
        return redirect(employee)
    return render(request, "demo/employee_form.html", {"form": form})


@login_required
def opportunity_list(request):
    query = request.GET.get("q", "").strip()
    stage = request.GET.get("stage", "")
    opportunities = Opportunity.objects.select_related("owner")
    if query:
        opportunities = opportunities.filter(Q(name__icontains=query) | Q(account__icontains=query))
    if stage in Opportunity.Stage.values:
        opportunities = opportunities.filter(stage=stage)
    return render(request, "demo/opportunity_list.html", {
        "page": _page(request, opportunities), "q": query, "stage": stage, "stages": Opportunity.Stage.choices,
    })


@login_required
@require_http_methods(["GET", "POST"])
def opportunity_detail(request, pk):
    record = get_object_or_404(Opportunity.objects.select_related("owner"), pk=pk)
    form = OpportunityStageForm(request.POST or None, instance=record, prefix="stage")
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, f"{record} is now “{record.get_stage_display()}”.")
        return redirect(record)
    return render(request, "demo/opportunity_detail.html", {
        "record": record, "form": form,
    })


@login_required
@require_http_methods(["GET", "POST"])
def opportunity_create(request):
    form = OpportunityForm(request.POST or None, initial={"owner": request.user.pk})
    if request.method == "POST" and form.is_valid():
        opportunity = form.save()
        messages.success(request, f"{opportunity} was added.")
        return redirect(opportunity)
    return render(request, "demo/opportunity_form.html", {"form": form, "record": None})


@login_required
@require_http_methods(["GET", "POST"])
def opportunity_edit(request, pk):
    record = get_object_or_404(Opportunity, pk=pk)
    form = OpportunityForm(request.POST or None, instance=record)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, f"{record} was saved.")
        return redirect(record)
    return render(request, "demo/opportunity_form.html", {"form": form, "record": record})
