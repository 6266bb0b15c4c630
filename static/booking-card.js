// The booking confirmation card, shared by the chat page (chat.js) and calls (voice.js)
// so a booking looks the same however it was made. Text only ever goes in via textContent.
(function () {
  "use strict";

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function bookingShown(transcript, number) {
    var cards = transcript.querySelectorAll("li.booking");
    for (var i = 0; i < cards.length; i++) {
      if (cards[i].dataset.booking === number) return true;
    }
    return false;
  }

  // Appends the card for `booking` (the chat API's booking dict) unless it is shown already.
  function appendBooking(transcript, booking) {
    var number = String(booking.booking_number || "");
    if (!number || bookingShown(transcript, number)) return false;
    var item = el("li", "booking");
    item.dataset.booking = number;
    var card = el("section", "booking-card");
    var headingId = "booking-" + number;
    card.setAttribute("aria-labelledby", headingId);
    var heading = el("h3");
    heading.id = headingId;
    var check = el("span", "booking-check", "✓");
    check.setAttribute("aria-hidden", "true");
    heading.append(check, " Booking confirmed");
    var details = el("dl");
    [
      ["Service", booking.service],
      ["When", booking.when],
      ["Technician", booking.technician],
      ["Address", booking.address],
      ["Estimate", booking.estimated_price],
    ].forEach(function (row) {
      if (row[1]) details.append(el("dt", "", row[0]), el("dd", "", row[1]));
    });
    card.append(
      heading,
      el("p", "booking-number", number),
      details,
      el("p", "booking-note", "Keep this number and your phone handy to change or cancel the visit.")
    );
    item.append(card);
    transcript.append(item);
    return true;
  }

  window.ChatdeskUI = { appendBooking: appendBooking };
})();
