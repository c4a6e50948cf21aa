-- Lua filter for ipcreport's built-in renderer: gives plain pandoc the Quarto meaning of
-- `fig-alt`, so one intermediate Markdown file serves Quarto and pandoc alike.
--
-- Quarto spells an image's alt text `fig-alt`, separate from its (visible) caption. Pandoc
-- reads alt text from different places per writer, so set each of them:
--   HTML: the `alt` attribute becomes <img alt>, the figure caption stays in <figcaption>;
--   docx: the image's own description becomes the picture's alt text (docPr descr);
--   Typst: pandoc drops alt text, so write the image call ourselves with `alt:`.

local function typst_string(s)
  local escaped = s:gsub('\\', '\\\\'):gsub('"', '\\"')
  return '"' .. escaped .. '"'
end

function Image(img)
  local alt = img.attributes['fig-alt']
  if alt == nil then
    return nil
  end
  img.attributes['fig-alt'] = nil
  img.attributes['alt'] = alt
  img.caption = pandoc.Inlines(alt)
  if FORMAT == 'typst' then
    return pandoc.RawInline('typst',
      '#image(' .. typst_string(img.src) .. ', alt: ' .. typst_string(alt) .. ')')
  end
  return img
end
