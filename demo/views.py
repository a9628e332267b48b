from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render

from .models import Employee, Opportunity


@login_required
def employee_detail(request, pk):
    return render(request, "demo/employee_detail.html", {"record": get_object_or_404(Employee, pk=pk)})


@login_required
def opportunity_detail(request, pk):
    return render(request, "demo/opportunity_detail.html", {"record": get_object_or_404(Opportunity, pk=pk)})
