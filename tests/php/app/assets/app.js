// app/assets/app.js: proves JavaScript ran through `fcgi serve` (the page's text changes).
document.getElementById('script').textContent = 'JavaScript ran';
document.getElementById('title').style.color = '#ffff00';
