// Progressive enhancement for the integration form: choosing another auth type reloads
// the form with that type's fields straight away (the server saves nothing on a type
// change), instead of waiting for the operator to press Save. Without JavaScript the
// same happens on the next Save.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  const select = document.getElementById("id_auth_type");
  const shown = document.querySelector("input[name=shown_type]");
  if (!select || !shown || !select.form) {
    return;
  }
  select.addEventListener("change", function () {
    if (select.value === shown.value) {
      return;
    }
    const stay = document.createElement("input");
    stay.type = "hidden";
    stay.name = "_continue";
    stay.value = "1";
    select.form.appendChild(stay);
    select.form.requestSubmit();
  });
});
