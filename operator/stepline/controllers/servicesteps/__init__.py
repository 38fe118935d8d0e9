"""ServiceSteps: kopf's handlers (`handlers`), the reconciler that applies each step's Deployment,
Service and HPA and writes its status (`reconciler`, computed in `status`), the watches of what
they own (`owned`) and of their ready endpoints (`endpoints`), the health checks of external
steps (`checks`), and the figures their autoscalers follow (`scaling`, `forecasting`).
"""
