from django.apps import AppConfig


class ModelingConfig(AppConfig):
    name = "modeling"
    verbose_name = "Modeling (model versions, scores)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from core.api_errors import answer_refusals
        from labeling.api import image_list_filters
        from modeling.api.refusal_statuses import REFUSAL_STATUS
        from modeling.api.score_filters import has_score

        # The labelling API's image list filters by the model's output without importing modeling.
        image_list_filters.register("has_score", has_score)
        from labeling.services import judgment_hooks
        from modeling.services.pair_selection import refill_after_comparison

        # Every stored judgment may make a pair-queue refill due: the selection keeps up with the judgments.
        judgment_hooks.register(refill_after_comparison)
        answer_refusals(REFUSAL_STATUS)
        from labeling.services import campaign_target
        from modeling.services.stopping_rule import srcc_rule_holds

        # The "campaign complete" flag is shared by the judgment target and the ranking-accuracy target.
        campaign_target.register_completion_rule(srcc_rule_holds)
