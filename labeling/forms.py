"""Forms of the manager pages and the sign-up page."""
from __future__ import annotations

from django import forms
from django.contrib.auth.forms import UserCreationForm

from core.limits import MAX_ID
from labeling.services.criteria import criteria_lines, parse_criteria_lines
from labeling.models import GOLD_ANSWERS, ExamplePair, GoldPair, Image, Membership, Project, Tag


class ProjectForm(forms.ModelForm):
    criteria_lines = forms.CharField(
        required=False, label="Criteria", widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Several questions per pair, one a line as key: question (2 to 4), e.g. "
        "“alignment: Which matches the prompt better?”. A key named overall (else the first) is the judgment's "
        "outcome. Empty: the question above alone.",
    )

    class Meta:
        model = Project
        fields = [
            "name", "slug", "question", "description", "tag_vocabulary", "overlap", "gold_rate", "allow_ties",
            "pair_strategy", "retrain_min_new_comparisons", "retrain_max_age_hours",
            "weight_raters_by_reliability", "qualification_gold_pairs", "qualification_min_accuracy", "show_prompt",
            "group_key", "allow_both_bad", "target_judgments", "target_judgments_per_image", "stop_at_judgment_target",
        ]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}

    # Settings added for crowd studies: a form (or a script) that leaves them out keeps their defaults.
    OPTIONAL_WITH_DEFAULT = ("qualification_gold_pairs", "qualification_min_accuracy")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["criteria_lines"].initial = criteria_lines(self.instance.criteria or [])
        for name in self.OPTIONAL_WITH_DEFAULT:
            self.fields[name].required = False
        if self.instance.pk:
            # URLs and API scripts use the slug: it is fixed once the project exists.
            self.fields["slug"].disabled = True
            self.fields["slug"].help_text = "Fixed once the project exists."

    def clean_criteria_lines(self):
        try:
            criteria = parse_criteria_lines(self.cleaned_data.get("criteria_lines") or "")
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        self.instance.criteria = criteria
        return criteria

    def clean(self):
        cleaned = super().clean()
        for name in self.OPTIONAL_WITH_DEFAULT:
            if cleaned.get(name) is None and name not in self.errors:
                cleaned[name] = getattr(self.instance, name) if self.instance.pk else Project._meta.get_field(name).default
        accuracy = cleaned.get("qualification_min_accuracy")
        if accuracy is not None and not 0 <= accuracy <= 1:
            self.add_error("qualification_min_accuracy", "An accuracy between 0 and 1 (e.g. 0.8).")
        if cleaned.get("target_judgments") is not None and cleaned.get("target_judgments_per_image") is not None:
            raise forms.ValidationError("Set the target as judgments or as judgments per image, not both.")
        per_image = cleaned.get("target_judgments_per_image")
        if per_image is not None and per_image <= 0:
            self.add_error("target_judgments_per_image", "A positive number of judgments per image.")
        return cleaned

    def clean_gold_rate(self):
        rate = self.cleaned_data["gold_rate"]
        if not 0 <= rate <= 1:
            raise forms.ValidationError("The gold rate is a share between 0 and 1 (e.g. 0.05 for one pair in 20).")
        return rate


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    widget = MultipleFileInput

    def clean(self, data, initial=None):
        files = data if isinstance(data, (list, tuple)) else [data]
        files = [f for f in files if f]
        if not files:
            raise forms.ValidationError("Choose at least one image file.")
        return files


class UploadForm(forms.Form):
    files = MultipleFileField(label="Images (JPEG, PNG or WebP)", widget=MultipleFileInput(attrs={"accept": "image/*"}))
    tags = forms.CharField(
        required=False, max_length=1000, help_text="Tags for every uploaded image, separated by ; or ,"
    )

    def clean_tags(self):
        names = [Tag.normalise(name) for name in self.cleaned_data["tags"].replace(",", ";").split(";")]
        return [name for name in names if name]


class InviteForm(forms.Form):
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.RATER)
    max_uses = forms.IntegerField(
        min_value=1, max_value=10000, initial=1, label="Uses", help_text="How many people may sign up with the link."
    )
    days = forms.IntegerField(min_value=1, max_value=365, initial=14, label="Valid for (days)")
    note = forms.CharField(required=False, max_length=200, help_text="Who it is for (only managers see this).")


def image_id_field(label: str) -> forms.IntegerField:
    return forms.IntegerField(min_value=1, max_value=MAX_ID, label=label)


class ImagePairForm(forms.Form):
    """Two different images of the manager's project, by id: a gold pair, an example of the instructions."""

    pair_name = "A pair"  # as the error names it

    def __init__(self, *args, project: Project, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project

    def clean(self):
        cleaned = super().clean()
        first, second = cleaned.get("image_a"), cleaned.get("image_b")
        self.pair = None if first is None or second is None else (first, second)
        if self.pair is None:
            return cleaned
        if first == second:
            raise forms.ValidationError(f"{self.pair_name} needs two different images.")
        found = set(Image.objects.filter(project=self.project, pk__in=[first, second]).values_list("pk", flat=True))
        for field, image_id in (("image_a", first), ("image_b", second)):
            if image_id not in found:
                self.add_error(field, f"Image {image_id} is not in this project.")
        return cleaned


class GoldPairForm(ImagePairForm):
    pair_name = "A gold pair"
    image_a = image_id_field("Image A (id)")
    image_b = image_id_field("Image B (id)")
    expected = forms.ChoiceField(choices=GOLD_ANSWERS, label="Right answer")
    note = forms.CharField(required=False, max_length=300)

    def clean(self):
        cleaned = super().clean()
        if self.pair and GoldPair.objects.filter(project=self.project, image_a__in=self.pair,
                                                 image_b__in=self.pair).exists():
            raise forms.ValidationError("This pair is already a gold pair.")
        return cleaned


class InstructionsForm(forms.ModelForm):
    class Meta:
        model = Project
        fields = ["instructions"]
        widgets = {"instructions": forms.Textarea(attrs={"rows": 14})}


class ExamplePairForm(ImagePairForm):
    pair_name = "An example"
    image_a = image_id_field("Left image (id)")
    image_b = image_id_field("Right image (id)")
    expected = forms.ChoiceField(choices=GOLD_ANSWERS, label="Right answer")
    explanation = forms.CharField(required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 3}),
                                  help_text="Why (Markdown).")

    def save(self) -> ExamplePair:
        data = self.cleaned_data
        return ExamplePair.objects.create(project=self.project, image_a_id=data["image_a"], image_b_id=data["image_b"],
                                          expected=data["expected"], explanation=data["explanation"])


class SignupForm(UserCreationForm):
    email = forms.EmailField(required=False)

    class Meta(UserCreationForm.Meta):
        fields = ["username", "email"]
