-- Lua filter for the Quarto path's Word output (format: docx: filters, at post-render).
--
-- Quarto places each labelled figure and table in a one-cell layout table, and writes no
-- alt text into Word (the picture's description stays empty). The built-in renderer writes
-- plain captioned figures whose pictures carry the `fig-alt` text that screen readers read,
-- and plain captioned tables. Here each layout table becomes that plain figure or table.

local function caption_inlines(para)
  local inlines = pandoc.Inlines({})
  for _, inline in ipairs(para.content) do
    if inline.t ~= 'RawInline' then inlines:insert(inline) end  -- Quarto's paragraph style
  end
  return inlines
end

-- The blocks of the Div inside a one-cell layout table, or nil.
local function layout_blocks(tbl)
  if #tbl.bodies ~= 1 or #tbl.bodies[1].body ~= 1 or #tbl.bodies[1].body[1].cells ~= 1
      or #tbl.head.rows ~= 0 then
    return nil
  end
  local blocks = tbl.bodies[1].body[1].cells[1].contents
  if #blocks ~= 1 or blocks[1].t ~= 'Div' or #blocks[1].content ~= 2 then return nil end
  return blocks[1], blocks[1].content[1], blocks[1].content[2]
end

local function plain_figure(div, plain, para)
  local image = plain.content[1]
  local alt = image.attributes['fig-alt'] or image.attributes['alt']
  if alt then
    image.caption = pandoc.Inlines(alt)  -- the docx writer's picture description
    image.attributes['fig-alt'] = nil
    image.attributes['alt'] = nil
  end
  return pandoc.Figure({pandoc.Plain({image})}, {pandoc.Plain(caption_inlines(para))},
    pandoc.Attr(div.identifier))
end

function Table(tbl)
  local div, first, second = layout_blocks(tbl)
  if div == nil then return nil end
  if first.t == 'Plain' and #first.content == 1 and first.content[1].t == 'Image'
      and second.t == 'Para' then
    return plain_figure(div, first, second)
  end
  local caption, inner = first, second  -- a table float: caption above or below the table
  if first.t == 'Table' then caption, inner = second, first end
  if inner.t == 'Table' and caption.t == 'Para' then
    inner.caption = {long = {pandoc.Plain(caption_inlines(caption))}}
    inner.identifier = div.identifier
    return inner
  end
  return nil
end
